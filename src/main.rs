//! The `vpcdns` command: CLI, logging, runtime and exit codes — nothing else.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use vpcdns::model::compile::Compiler;
use vpcdns::model::explain;
use vpcdns::process::cli::app::{Cli, Command, LogFormat};
use vpcdns::process::reload;

/// Exit codes: 0 done; 1 the command failed here (a bad file, a local error); 2 a usage error (clap's); 3 the
/// server refused (4xx: the request must change); 4 the server failed or did not answer (5xx, unreachable: retry
/// later). README, "Exit codes".
fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; a command run by a person says only what went wrong (RUST_LOG overrides).
    let serving = matches!(cli.command, Command::Serve { .. });
    init_logging(cli.log_format, if serving { "info" } else { "warn" });
    let json = match &cli.command {
        Command::Admin(args) => args.output.json,
        Command::Operator(args) => args.output.json,
        _ => false,
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let failure = e.downcast_ref::<vpcdns::process::cli::client::Failure>();
            match (json, failure) {
                (true, Some(failure)) => eprintln!("{}", failure.to_json()),
                (true, None) => eprintln!("{}", serde_json::json!({ "code": "error", "message": format!("{e:#}") })),
                (false, _) => eprintln!("vpcdns: {e:#}"),
            }
            ExitCode::from(failure.map_or(1, |f| f.exit_code()))
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only for a person at a terminal, and never with NO_COLOR set (no-color.org).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config, watch_interval_ms, udp_sockets } => {
            vpcdns::process::daemon::serve(config, Duration::from_millis(watch_interval_ms.max(10)), udp_sockets)
        }
        Command::Completions { shell } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: the generator panics on a closed pipe (`| head`); a write error is reported.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli, "vpcdns", &mut script);
            write_stdout(&script)
        }
        Command::Man => {
            let cli = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cli).render(&mut page).context("cannot render the man page")?;
            write_stdout(&page)
        }
        Command::Admin(args) => client_runtime()?.block_on(vpcdns::process::cli::admin::run(args)),
        Command::Operator(args) => client_runtime()?.block_on(vpcdns::process::cli::operator::run(args)),
        Command::Check { config } => {
            let loaded = reload::load_valid(&config, None)?;
            let s = &loaded.state;
            let records: usize = s.zones.values().map(|z| z.records.len()).sum();
            vpcdns::outln!(
                "{}: OK ({} accounts, {} vpcs, {} links, {} zones, {} records)",
                config.display(),
                s.accounts.len(),
                s.vpcs.len(),
                s.links.len(),
                s.zones.len(),
                records
            );
            Ok(())
        }
        Command::Explain { config, question: q } => {
            let loaded = reload::load_valid(&config, None)?;
            let snapshot = Compiler::default().compile(&loaded.state);
            let Some(listener) = q.listener.or_else(|| loaded.state.served.listen.first().copied()) else {
                bail!("no listener: give --listener");
            };
            let question = explain::Question::parse(listener, q.source, &q.name, &q.qtype, q.tcp)
                .and_then(|question| question.through(q.endpoint.as_deref(), q.vpc_id.as_deref()))
                .map_err(|(_, message)| anyhow::anyhow!(message))?;
            vpcdns::out!("{}", vpcdns::dataplane::explain::explain(&loaded.state, &snapshot, &question, None));
            Ok(())
        }
    }
}

/// A small runtime for the CLI clients.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")
}

/// Writes generated text to stdout; a reader that closed the pipe early is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
