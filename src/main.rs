//! `drawbridge`: one binary for every component and operator task.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use drawbridge_platform::{postgres, telemetry, Settings};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "drawbridge",
    version,
    about = "Fair, surge-proof allocation of scarce appointments"
)]
struct Cli {
    /// Configuration file (TOML); `DRAWBRIDGE_<SECTION>__<KEY>` variables override single keys.
    #[arg(long, global = true, env = "DRAWBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Gateway, allocator and notifier in one process.
    Serve {
        /// Load the demo data set first.
        #[arg(long)]
        demo: bool,
    },
    /// The HTTP APIs and web pages.
    Gateway,
    /// Periodic allocation ticks.
    Allocator {
        /// Run one tick, print what it did as JSON, and exit.
        #[arg(long)]
        once: bool,
        /// Only this region (with --once).
        #[arg(long, requires = "once")]
        region: Option<String>,
    },
    /// Outbox relay and SMS/email delivery.
    Notifier,
    /// Apply database migrations and exit.
    Migrate,
    /// Load the demo data set (region, policy, centres, a week of capacity) and exit.
    Demo,
    /// Work with region policies.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Validate a policy file without touching the database.
    Check { file: PathBuf },
    /// Publish a policy file as its region's newest version.
    Publish { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line that says what to fix.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Policy {
        action: PolicyAction::Check { file },
    } = &cli.command
    {
        return check_policy(file);
    }
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.telemetry);
    let shutdown = CancellationToken::new();
    match cli.command {
        Command::Serve { demo } => {
            if demo {
                load_demo(&settings).await?;
            }
            let gateway = drawbridge_gateway::build(&settings, shutdown.clone()).await?;
            let allocator = drawbridge_allocator::build(&settings, shutdown.clone()).await?;
            let notifier = drawbridge_notifier::build(&settings, shutdown.clone()).await?;
            println!("Drawbridge is running: open http://{}/", gateway.address());
            stop_on_signal(shutdown);
            let (g, a, n) = tokio::join!(
                gateway.run_until_stopped(),
                allocator.run_until_stopped(),
                notifier.run_until_stopped()
            );
            g.and(a).and(n)?;
        }
        Command::Gateway => {
            let gateway = drawbridge_gateway::build(&settings, shutdown.clone()).await?;
            stop_on_signal(shutdown);
            gateway.run_until_stopped().await?;
        }
        Command::Allocator { once, region } => {
            let allocator = drawbridge_allocator::build(&settings, shutdown.clone()).await?;
            if once {
                let ticks = allocator.tick_regions(region.as_deref()).await?;
                println!("{}", serde_json::to_string_pretty(&ticks)?);
            } else {
                stop_on_signal(shutdown);
                allocator.run_until_stopped().await?;
            }
        }
        Command::Notifier => {
            let notifier = drawbridge_notifier::build(&settings, shutdown.clone()).await?;
            stop_on_signal(shutdown);
            notifier.run_until_stopped().await?;
        }
        Command::Migrate => {
            postgres::connect_and_migrate(&settings.database).await?;
            println!("database is at the newest schema");
        }
        Command::Demo => load_demo(&settings).await?,
        Command::Policy {
            action: PolicyAction::Publish { file },
        } => {
            let document = read(&file)?;
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let mut tx = pool.begin().await?;
            let published = drawbridge_platform::policies::publish(&mut tx, &document).await?;
            tx.commit().await?;
            println!(
                "region {} now follows policy version {} (sha256 {})",
                published.region, published.version, published.digest
            );
        }
        Command::Policy {
            action: PolicyAction::Check { .. },
        } => unreachable!("handled before loading configuration"),
    }
    Ok(())
}

async fn load_demo(settings: &Settings) -> anyhow::Result<()> {
    let pool = postgres::connect_and_migrate(&settings.database).await?;
    let summary = drawbridge::demo::load(&pool)
        .await
        .context("loading the demo data")?;
    tracing::info!(?summary, "demo data loaded");
    Ok(())
}

fn check_policy(file: &std::path::Path) -> anyhow::Result<()> {
    let policy =
        drawbridge_domain::Policy::from_toml(&read(file)?).with_context(|| format!("{}", file.display()))?;
    println!(
        "{}: valid policy version {} for region {}",
        file.display(),
        policy.version,
        policy.region
    );
    Ok(())
}

fn read(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// Ctrl-C or SIGTERM stops every component gracefully.
fn stop_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler installs");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}
