//! `tongban-hub` command line (CONTRACT.md). The county server (init, enroll, serve, demo) arrives with
//! the hub/sync issue; the calendar command is complete and uses the same shared calendar the hub will.

use std::process::ExitCode;

use anyhow::bail;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use tongban_shared::calendar::Calendar;

#[derive(Parser)]
#[command(name = "tongban-hub", version, about = "通办 county hub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Working-day calendar (statutory holidays and makeup working days).
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Print the date on which N working days, counted from the day after --from, are complete.
    Due {
        /// Start date, YYYY-MM-DD (e.g. the day of acceptance).
        #[arg(long)]
        from: NaiveDate,
        /// Number of working days.
        #[arg(long)]
        days: u32,
        /// Hub data directory whose calendar to use (built-in 2026 table without it).
        #[arg(long)]
        data: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误 error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Calendar {
            command: CalendarCommand::Due { from, days, data },
        } => {
            if data.is_some() {
                bail!("--data: the hub store does not exist yet in this build; omit it to use the built-in 2026 table");
            }
            let calendar = Calendar::builtin()?;
            let due = calendar.due_date(from, days);
            for year in [from.format("%Y"), due.format("%Y")] {
                let year: i32 = year.to_string().parse()?;
                if !calendar.covers(year) {
                    eprintln!(
                        "warning: no holiday table for {year}; only weekends counted as days off"
                    );
                }
            }
            println!("{}", due.format("%Y-%m-%d"));
            Ok(())
        }
    }
}
