//! The `fileorg` binary: parses the command line and configuration, then hands
//! over to the library.

mod cli;

use cli::{dbtools, find_duplicates, loadtest};

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use fileorganizer::{config::Config, infra::telemetry, pb, server, state::AppState};

/// mimalloc instead of glibc's malloc: a GetOperation under load spent a
/// fifth of the server's CPU in glibc's malloc and free (BENCHMARKS.md,
/// round 6).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fileorg",
    version,
    about = "FileOrganizer Pro: organizes users' files over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (gRPC, grpc-web, health, reflection).
    Serve,
    /// Run job workers only (no API), to scale organize jobs out.
    Worker {
        /// Number of workers in this process (default: WORKERS, at least 1).
        #[arg(long)]
        count: Option<usize>,
    },
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Write the encoded FileDescriptorSet (for Envoy's transcoder).
    Descriptor {
        /// Where to write it.
        #[arg(long, default_value = "envoy/fileorganizer.pb")]
        out: PathBuf,
    },
    /// Probe grpc.health.v1; exit 0 only when the server is SERVING.
    Healthcheck {
        /// Server address; defaults to GRPC_ADDR.
        #[arg(long)]
        addr: Option<String>,
        /// The service to check ("" is the whole server).
        #[arg(long, default_value = "")]
        service: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Benchmark a running server: organize a synthetic tree and/or drive
    /// concurrent clients (loopback only; bounded in count and time).
    Loadtest(Box<loadtest::Args>),
    /// Find byte-identical duplicates in a local folder with the engine's
    /// scan and staged hashing (no server, nothing moved).
    FindDuplicates(find_duplicates::Args),
    /// Database tuning: optimize (indexes + ANALYZE), analyze (EXPLAIN hot queries), stats.
    Db {
        #[command(subcommand)]
        command: dbtools::DbCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Give a user the admin role.
    Promote { email: String },
    /// Take the admin role away (at once for the user's sessions and keys).
    Demote { email: String },
    /// Disable an account: its logins, sessions and API keys are refused.
    Disable { email: String },
    /// Enable a disabled account again.
    Enable { email: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("fileorg: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Descriptor { out } => {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&out, pb::FILE_DESCRIPTOR_SET)?;
            println!(
                "wrote {} ({} bytes)",
                out.display(),
                pb::FILE_DESCRIPTOR_SET.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck {
            addr,
            service,
            timeout,
        } => {
            let addr = match addr {
                Some(a) => a,
                None => std::env::var("GRPC_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into()),
            };
            healthcheck(&addr, &service, Duration::from_secs(timeout)).await
        }
        Command::Serve => {
            let config = Config::from_env()?;
            telemetry::init(config.log_format);
            tracing::info!(?config, "starting");
            fileorganizer::infra::open_files::raise_limit_logged();
            let listener = tokio::net::TcpListener::bind(config.grpc_addr)
                .await
                .map_err(|e| anyhow::anyhow!("GRPC_ADDR {}: {e}", config.grpc_addr))?;
            let state = AppState::connect(config).await?;
            let served = server::run(listener, server::shutdown_signal(), state).await;
            fileorganizer::infra::otel::shutdown().await;
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker { count } => {
            let config = Config::from_env()?;
            telemetry::init(config.log_format);
            fileorganizer::infra::open_files::raise_limit_logged();
            let count = count.unwrap_or(config.workers).max(1);
            let state = AppState::connect(config).await?;
            let metrics = fileorganizer::infra::observability::start(
                state.config.metrics_addr,
                state.shutting_down.clone(),
                fileorganizer::infra::metrics_sampler(state.clone()),
            )
            .await?;
            let workers = fileorganizer::jobs::spawn_workers(&state, count);
            tracing::info!(count, "workers running; SIGINT/SIGTERM stops them");
            server::shutdown_signal().await;
            state.begin_shutdown();
            for worker in workers {
                let _ = tokio::time::timeout(state.config.shutdown_timeout, worker).await;
            }
            if let Some(metrics) = metrics {
                metrics.join(state.config.shutdown_timeout).await;
            }
            fileorganizer::infra::otel::shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Loadtest(args) => loadtest::run(*args).await,
        Command::FindDuplicates(args) => {
            tokio::task::spawn_blocking(move || find_duplicates::run(args)).await?
        }
        Command::Db { command } => dbtools::run(command).await,
        Command::Migrate => {
            let config = Config::from_env()?;
            telemetry::init(config.log_format);
            fileorganizer::db::ensure_database(&config.database_url).await?;
            let applied = fileorganizer::db::run_migrations(&config.database_url).await?;
            println!("applied {} migration(s)", applied.len());
            for version in applied {
                println!("  {version}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::User { command } => {
            use fileorganizer::auth::accounts::{self, AccountChange};
            let config = Config::from_env()?;
            let (email, change) = match command {
                UserCommand::Promote { email } => (email, AccountChange::Promote),
                UserCommand::Demote { email } => (email, AccountChange::Demote),
                UserCommand::Disable { email } => (email, AccountChange::Disable),
                UserCommand::Enable { email } => (email, AccountChange::Enable),
            };
            let email = fileorganizer::auth::email::Email::parse(&email)
                .map_err(|e| anyhow::anyhow!("EMAIL {e}"))?;
            match accounts::apply(&config, &email, change).await? {
                Some(user) => {
                    let status = if user.disabled { "disabled" } else { "enabled" };
                    println!("{} is now {} ({status})", user.email, user.role);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("fileorg: no user with email {email}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

async fn healthcheck(addr: &str, service: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(uri.clone())?
            .connect_timeout(timeout)
            .connect()
            .await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?;
        anyhow::Ok(response.into_inner().status())
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(ServingStatus::Serving)) => {
            println!("SERVING");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(status)) => {
            println!("{}", status.as_str_name());
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(error)) => {
            println!("UNREACHABLE: {error:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            println!("TIMEOUT after {timeout:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}
