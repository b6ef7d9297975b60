//! The `vpcdns` command line as clap reads it: every command, argument and its help (the binary's `main` runs
//! them; `completions`, `man` and the help-text test walk the same definitions).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::admin::ExplainArgs;

#[derive(Parser)]
#[command(name = "vpcdns", version, about = "Multi-tenant private DNS for VPCs")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the configuration's zones on every [server].listen address, UDP and TCP.
    Serve {
        /// The configuration file (see config/example.toml and config/managed.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// How often config and zone files are checked for changes, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        watch_interval_ms: u64,
        /// UDP sockets per listen address (SO_REUSEPORT); default: one per CPU.
        #[arg(long)]
        udp_sockets: Option<usize>,
    },
    /// Validate a configuration: exit 0, or print every problem and exit 1.
    Check {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Tenant operations through the admin API.
    Admin(super::admin::AdminArgs),
    /// Operator operations: the inventory (accounts, VPCs), root keys.
    Operator(super::operator::OperatorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these definitions.
    Man,
    /// Say why a source gets the answer it gets, without sockets.
    Explain {
        /// The configuration file whose state is asked.
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        question: ExplainArgs,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand below `cmd` (its path, and the command), depth first.
    fn commands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            out.push((path.clone(), sub.clone()));
            commands(sub, &path, out);
        }
    }

    fn all() -> Vec<(String, clap::Command)> {
        let mut out = Vec::new();
        commands(&Cli::command(), "vpcdns", &mut out);
        out
    }

    #[test]
    fn every_command_and_argument_says_what_it_is_for() {
        let mut missing = Vec::new();
        for (path, cmd) in all() {
            if cmd.get_about().is_none_or(|a| a.to_string().trim().is_empty()) {
                missing.push(format!("{path}: no description"));
            }
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path} {}: no help", arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "{} without help:\n{}", missing.len(), missing.join("\n"));
    }

    /// Commands that change state show how they are used: an example in their `after_help`.
    #[test]
    fn every_change_shows_an_example() {
        const CHANGES: [&str; 14] = [
            "create", "add", "change", "rm", "put", "request", "verify", "block", "unblock", "scope", "fallback",
            "rotate", "apply", "decline",
        ];
        let mut missing = Vec::new();
        for (path, cmd) in all() {
            let leaf = cmd.get_subcommands().next().is_none();
            if leaf
                && CHANGES.contains(&cmd.get_name())
                && cmd.get_after_help().is_none_or(|h| !h.to_string().contains("Example"))
            {
                missing.push(path);
            }
        }
        assert!(missing.is_empty(), "{} changes without an example:\n{}", missing.len(), missing.join("\n"));
    }
}
