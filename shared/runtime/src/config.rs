//! `--config FILE`: every command-line option of both binaries settable in a TOML file
//! (`/etc/tongban/hub.toml`, `/etc/tongban/node.toml` in the packages).
//!
//! The file's keys are the options' long names (`http = "127.0.0.1:8080"`, `sync-interval = 30`;
//! `sync_interval` works too). Keys at the top apply to every command that has that option (`data`
//! for all of them); a table named after a command applies to it alone (`[serve]`, `[backup]`,
//! `[user.add]`). What the command line says wins over the file. A key that is no option anywhere,
//! or not one of its table's command, is an error that names it: a typo must not be ignored
//! silently on a server nobody watches.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context};

/// Parses the process's command line with the options of its `--config FILE` added; a config file
/// that cannot be used ends the process with its reason, as clap does for a bad option.
pub fn parse<C: clap::Parser>() -> C {
    let args: Vec<OsString> = std::env::args_os().collect();
    match with_config(&C::command(), args) {
        Ok(args) => C::parse_from(args),
        Err(e) => {
            eprintln!("错误 error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// The arguments with the options of `--config FILE` added (those the command line does not give).
pub fn with_config(cmd: &clap::Command, args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("--config {}: cannot read it", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("--config {}", path.display()))?;
    let (leaf, names) = subcommand_of(cmd, &args);
    let mut added = Vec::new();
    for (key, value) in &table {
        if let toml::Value::Table(_) = value {
            continue;
        }
        let flag = flag_name(key);
        match leaf.get_arguments().find(|a| a.get_long() == Some(&flag)) {
            Some(arg) => add(&mut added, &args, arg, value, &path)?,
            None if !known_anywhere(cmd, &flag) => bail!(
                "--config {}: `{key}` is not an option of {}",
                path.display(),
                cmd.get_name()
            ),
            None => {}
        }
    }
    let section = names.iter().try_fold(&table, |t, name| match t.get(name) {
        Some(toml::Value::Table(inner)) => Some(inner),
        _ => None,
    });
    if let Some(section) = section.filter(|_| !names.is_empty()) {
        for (key, value) in section {
            if let toml::Value::Table(_) = value {
                continue;
            }
            let flag = flag_name(key);
            let Some(arg) = leaf.get_arguments().find(|a| a.get_long() == Some(&flag)) else {
                bail!(
                    "--config {}: `{key}` in [{}] is not an option of `{} {}`",
                    path.display(),
                    names.join("."),
                    cmd.get_name(),
                    names.join(" ")
                );
            };
            add(&mut added, &args, arg, value, &path)?;
        }
    }
    let mut all = args;
    all.extend(added);
    Ok(all)
}

fn flag_name(key: &str) -> String {
    key.replace('_', "-")
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// The deepest subcommand the arguments name, and the names leading to it.
fn subcommand_of<'a>(
    cmd: &'a clap::Command,
    args: &[OsString],
) -> (&'a clap::Command, Vec<String>) {
    let mut at = cmd;
    let mut names = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        // `--config` may come before the command (it is global).
        if a == "--config" {
            it.next();
            continue;
        }
        if a.starts_with("--config=") {
            continue;
        }
        if a.starts_with('-') {
            break;
        }
        match at.find_subcommand(a.as_ref()) {
            Some(sub) => {
                names.push(sub.get_name().to_string());
                at = sub;
            }
            None => break,
        }
    }
    (at, names)
}

fn known_anywhere(cmd: &clap::Command, flag: &str) -> bool {
    cmd.get_arguments().any(|a| a.get_long() == Some(flag))
        || cmd.get_subcommands().any(|s| known_anywhere(s, flag))
}

/// Whether the command line gives this option already (it wins over the file).
fn given(args: &[OsString], flag: &str) -> bool {
    let long = format!("--{flag}");
    let with_value = format!("--{flag}=");
    args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == long || a.starts_with(&with_value)
    })
}

fn add(
    added: &mut Vec<OsString>,
    args: &[OsString],
    arg: &clap::Arg,
    value: &toml::Value,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let flag = arg.get_long().unwrap_or_default();
    if given(args, flag) || given(added, flag) {
        return Ok(());
    }
    let takes_value = arg.get_action().takes_values();
    let values: Vec<String> = match value {
        toml::Value::Boolean(b) if !takes_value => {
            if *b {
                added.push(format!("--{flag}").into());
            }
            return Ok(());
        }
        toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<_>>(),
        other => scalar(other).map(|s| vec![s]),
    }
    .with_context(|| {
        format!(
            "--config {}: `{flag}` has a value of the wrong kind",
            path.display()
        )
    })?;
    if !takes_value {
        bail!(
            "--config {}: `{flag}` is a switch: write `{flag} = true`",
            path.display()
        );
    }
    for v in values {
        added.push(format!("--{flag}={v}").into());
    }
    Ok(())
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cli() -> Command {
        Command::new("tongban-hub")
            .subcommand(
                Command::new("serve")
                    .arg(Arg::new("data").long("data"))
                    .arg(Arg::new("http").long("http"))
                    .arg(Arg::new("sync-interval").long("sync-interval"))
                    .arg(Arg::new("demo").long("demo").action(ArgAction::SetTrue))
                    .arg(Arg::new("config").long("config")),
            )
            .subcommand(
                Command::new("user").subcommand(
                    Command::new("add")
                        .arg(Arg::new("data").long("data"))
                        .arg(Arg::new("config").long("config")),
                ),
            )
    }

    fn run(file: &str, args: &[&str]) -> anyhow::Result<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, file).unwrap();
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.push("--config".into());
        all.push(path.clone().into());
        let out = with_config(&cli(), all)?;
        let out: Vec<String> = out
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .skip(args.len() + 2)
            .collect();
        Ok(out)
    }

    #[test]
    fn the_file_fills_in_what_the_command_line_leaves_out() {
        let file = "data = \"/var/lib/tongban/hub\"\n\n[serve]\nhttp = \"127.0.0.1:8080\"\nsync_interval = 30\ndemo = true\n";
        assert_eq!(
            run(file, &["tongban-hub", "serve", "--http", "0.0.0.0:80"]).unwrap(),
            [
                "--data=/var/lib/tongban/hub",
                "--demo",
                "--sync-interval=30"
            ]
        );
        // A top-level key reaches other commands; another command's table does not.
        assert_eq!(
            run(file, &["tongban-hub", "user", "add"]).unwrap(),
            ["--data=/var/lib/tongban/hub"]
        );
    }

    #[test]
    fn a_typo_in_the_file_is_named() {
        let e = run("dta = \"/x\"\n", &["tongban-hub", "serve"]).unwrap_err();
        assert!(e.to_string().contains("`dta` is not an option"), "{e}");
        let e = run("[serve]\nhtttp = \"x\"\n", &["tongban-hub", "serve"]).unwrap_err();
        assert!(e.to_string().contains("`htttp` in [serve]"), "{e}");
        let e = run("[serve]\ndemo = \"yes\"\n", &["tongban-hub", "serve"]).unwrap_err();
        assert!(e.to_string().contains("is a switch"), "{e}");
        let e = run("[serve\n", &["tongban-hub", "serve"]).unwrap_err();
        assert!(format!("{e:#}").contains("--config"), "{e:#}");
    }
}
