//! `muon events ...`: event-bus commands. `test-pattern` needs no server.

use std::process::ExitCode;

use anyhow::Context;

use crate::client::read_data;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Does an event match an event pattern? Prints `match` or `no match` (exit 0); an invalid
    /// pattern or event prints why (exit 2). Like EventBridge's TestEventPattern.
    TestPattern {
        /// The event pattern: JSON text, `@FILE`, or `@-` for standard input.
        #[arg(long, short)]
        pattern: String,
        /// The event (EventBridge envelope): JSON text, `@FILE`, or `@-`.
        #[arg(long, short)]
        event: String,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::TestPattern { pattern, event } => {
            let text = |arg: &str, what: &str| -> anyhow::Result<String> {
                String::from_utf8(read_data(arg)?)
                    .with_context(|| format!("the {what} is not UTF-8"))
            };
            let pattern = text(&pattern, "pattern")?;
            let event = text(&event, "event")?;
            match muon_pattern::test_event_pattern(&pattern, &event) {
                Ok(true) => println!("match"),
                Ok(false) => println!("no match"),
                Err(e) => {
                    eprintln!("{}: {e}", e.aws_code());
                    return Ok(ExitCode::from(2));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
