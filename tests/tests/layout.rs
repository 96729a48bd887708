//! The shape of the code, checked like behaviour: no module of the web app, the node or the hub uses
//! a module that uses it back (directly or around a circle), and no product source file grows past
//! the size a reader can hold, except the few `docs/ARCHITECTURE.md` names with a reason.
//!
//! The module graph is read from the source text: a file is a module (`src/a/b.rs` and
//! `src/a/b/mod.rs` are `a::b`), and it uses another module when it names it through `crate::`,
//! `super::` or a child's name. Unit-test modules (`#[cfg(test)]` to the end of the file) are left
//! out: `use super::*` in a test is not a dependency of the product.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Module path (`["pages", "case"]`) → the product part of its file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            let last = parts.last().cloned().unwrap_or_default();
            if last == "main" && parts.len() == 1 {
                continue; // a binary's root is not part of the library's graph
            }
            if last == "mod" || (last == "lib" && parts.len() == 1) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let product = match text.find("#[cfg(test)]") {
                Some(i) => &text[..i],
                None => &text,
            };
            out.insert(parts, without_comments(product));
        }
    }
    out
}

/// The code without comments: a doc link to a module is not a use of it.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("//") {
                ""
            } else {
                line.split(" // ").next().unwrap_or("")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifiers separated by `::` starting at `rest` (`pages::case::x` → `["pages","case","x"]`).
fn path_at(rest: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut s = rest;
    loop {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        if end == 0 {
            break;
        }
        parts.push(s[..end].to_string());
        match s[end..].strip_prefix("::") {
            Some(next) => s = next,
            None => break,
        }
    }
    parts
}

/// The longest known module that `path` starts with.
fn resolve(known: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

fn is_ident_start(text: &str, at: usize) -> bool {
    at == 0
        || !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Which modules each module uses.
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mods = modules(src);
    let known: BTreeSet<Vec<String>> = mods.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, text) in &mods {
        let mut uses = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            if is_ident_start(text, i) {
                if let Some(t) = resolve(&known, &path_at(&text[i + 7..])) {
                    uses.insert(t);
                }
            }
        }
        for (i, _) in text.match_indices("super::") {
            if is_ident_start(text, i) && !module.is_empty() {
                let mut p = module[..module.len() - 1].to_vec();
                p.extend(path_at(&text[i + 7..]));
                if let Some(t) = resolve(&known, &p) {
                    uses.insert(t);
                }
            }
        }
        // A child named from its parent: `login::routes()`.
        for child in known
            .iter()
            .filter(|k| k.len() == module.len() + 1 && k.starts_with(module))
        {
            let name = format!("{}::", child[child.len() - 1]);
            if text
                .match_indices(&name)
                .any(|(i, _)| is_ident_start(text, i))
            {
                uses.insert(child.clone());
            }
        }
        uses.remove(module);
        edges.insert(module.clone(), uses);
    }
    edges
}

/// A circle of uses, if there is one, as `a -> b -> a`.
fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<String> {
    fn name(m: &[String]) -> String {
        if m.is_empty() {
            "crate".into()
        } else {
            m.join("::")
        }
    }
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        done: &mut BTreeSet<Vec<String>>,
        path: &mut Vec<Vec<String>>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut names: Vec<String> = path[i..].iter().map(|p| name(p)).collect();
            names.push(name(m));
            return Some(names.join(" -> "));
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut done, &mut Vec::new()))
}

#[test]
fn the_cycle_check_finds_a_circle_and_passes_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("pages")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod pages;\nmod state;\n").unwrap();
    std::fs::write(
        src.join("pages/mod.rs"),
        "mod login;\npub fn routes() { login::routes() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("pages/login.rs"),
        "use crate::state::S;\npub fn routes() {}\n#[cfg(test)]\nmod tests { use super::*; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("state.rs"),
        "//! Used by [`crate::pages`], which is no dependency.\npub struct S;\n",
    )
    .unwrap();
    assert_eq!(find_cycle(&graph(src)), None);

    // The child now reaches back to its parent: pages -> pages::login -> pages.
    std::fs::write(
        src.join("pages/login.rs"),
        "use super::helper;\npub fn routes() {}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("pages/mod.rs"),
        "mod login;\npub fn helper() {}\npub fn routes() { login::routes() }\n",
    )
    .unwrap();
    let cycle = find_cycle(&graph(src)).expect("a circle");
    assert!(cycle.contains("pages::login"), "{cycle}");

    // Around three modules through crate:: paths.
    std::fs::write(src.join("pages/login.rs"), "pub fn routes() {}\n").unwrap();
    std::fs::write(src.join("state.rs"), "use crate::pages::routes;\n").unwrap();
    std::fs::write(
        src.join("pages/mod.rs"),
        "mod login;\nuse crate::state::S;\n",
    )
    .unwrap();
    assert!(find_cycle(&graph(src)).is_some());
}

#[test]
fn web_node_and_hub_modules_form_trees() {
    for krate in ["shared/web/src", "node/src", "hub/src"] {
        let edges = graph(&workspace().join(krate));
        assert!(edges.len() > 3, "{krate}: no modules found");
        if let Some(cycle) = find_cycle(&edges) {
            panic!("{krate} has a module cycle: {cycle}");
        }
    }
}

/// Files that may be longer, each with its reason in docs/ARCHITECTURE.md ("Long files").
const LONG_FILES: &[&str] = &["shared/src/sync/session.rs", "shared/src/case.rs"];
const MAX_LINES: usize = 600;

#[test]
fn product_files_stay_short_unless_the_architecture_says_why() {
    let root = workspace();
    let architecture = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let mut long = Vec::new();
    for dir in [
        "shared/src",
        "shared/runtime/src",
        "shared/web/src",
        "node/src",
        "hub/src",
        "deploy/demo/src",
    ] {
        let dir = root.join(dir);
        if !dir.exists() {
            continue;
        }
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Unit tests at the end of a file do not make it harder to read.
                    let product = text.split("#[cfg(test)]").next().unwrap_or("");
                    let lines = product.lines().count();
                    let rel = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    if lines > MAX_LINES {
                        long.push((rel, lines));
                    }
                }
            }
        }
    }
    for (file, lines) in &long {
        assert!(
            LONG_FILES.contains(&file.as_str()) && architecture.contains(file.as_str()),
            "{file} has {lines} lines of product code (at most {MAX_LINES}, or say why in docs/ARCHITECTURE.md and list it here)"
        );
    }
}
