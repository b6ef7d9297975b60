//! The `vpcdns` command: CLI, logging, runtime and exit codes — nothing else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use vpcdns::model::compile::Compiler;
use vpcdns::model::explain;
use vpcdns::process::cli::admin::ExplainArgs;
use vpcdns::process::reload;

#[derive(Parser)]
#[command(name = "vpcdns", version, about = "Multi-tenant private DNS for VPCs")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configuration's zones on every [server].listen address, UDP and TCP.
    Serve {
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
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Tenant operations through the admin API.
    Admin(vpcdns::process::cli::admin::AdminArgs),
    /// Operator operations: the inventory (accounts, VPCs), root keys.
    Operator(vpcdns::process::cli::operator::OperatorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), generated from these definitions.
    Man,
    /// Say why a source gets the answer it gets, without sockets.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        question: ExplainArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpcdns: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
