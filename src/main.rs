//! `drawbridge`: one binary for every component and operator task.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use drawbridge_allocator::BeaconValue;
use drawbridge_domain::allocation::draw::{unhex, Manifest};
use drawbridge_domain::waiting_room::room::is_valid_name;
use drawbridge_domain::{BookingReference, CheckinPass, PublicPassKeys, Role, RoomConfig, RoomMode};
use drawbridge_gateway::rooms::RoomStore;
use drawbridge_platform::staff::NewStaff;
use drawbridge_platform::{postgres, redis, telemetry, Settings};
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
        /// Seed the draw from this public randomness beacon round (with --once), e.g. a drand
        /// round announced before the draw.
        #[arg(long, requires_all = ["once", "beacon_randomness"])]
        beacon_round: Option<u64>,
        /// The beacon round's randomness, hex.
        #[arg(long, requires = "beacon_round")]
        beacon_randomness: Option<String>,
    },
    /// Re-run a draw from its manifest (a file from GET /v1/draws/{id}/manifest, or - for
    /// standard input) and say whether it reproduces the recorded outcome exactly.
    Replay { manifest: PathBuf },
    /// What-if scenarios on the production allocation code, policy comparisons and replays of
    /// published draws (see simulations/README.md). Needs no configuration or services.
    Simulate(drawbridge_simulations::cli::SimulateArgs),
    /// Replay recorded draws and test them for bias (chi-square, significance 0.001). Exits 1
    /// when a draw fails a check, 3 when no bias test could run at all.
    Audit {
        /// Only this region.
        #[arg(long, conflicts_with = "manifests")]
        region: Option<String>,
        /// How many of the newest completed draws.
        #[arg(long, default_value_t = 20, conflicts_with = "manifests")]
        last: i64,
        /// Audit the published manifests (`*.json`, as `GET /v1/draws/{id}/manifest` serves
        /// them) in this directory instead: no database, configuration or hash key needed.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
    /// Outbox relay and SMS/email delivery.
    Notifier,
    /// Apply database migrations and exit.
    Migrate,
    /// Remove what is past its retention under `[retention]` (every gateway also does so every
    /// `retention.purge_every_seconds`) and print how many rows of each kind went, as JSON.
    Purge {
        /// Count what would go and keep it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Load the demo data set (region, policy, centres, a week of capacity) and exit.
    Demo,
    /// Work with region policies.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Work with waiting rooms (run-time data in Redis: every gateway picks up a change within
    /// `rooms.refresh_millis`).
    Rooms {
        #[command(subcommand)]
        action: RoomsAction,
    },
    /// Work with staff accounts.
    Staff {
        #[command(subcommand)]
        action: StaffAction,
    },
    /// Set up vaccination centres (as the region admin's console does).
    Centres {
        #[command(subcommand)]
        action: CentresAction,
    },
    /// Set up postcode areas' centroids, which distances are measured from.
    Postcodes {
        #[command(subcommand)]
        action: PostcodesAction,
    },
    /// Check-in passes.
    Pass {
        #[command(subcommand)]
        action: PassAction,
    },
    /// The keys of personal data at rest.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum CentresAction {
    /// Create or change the region's centres from a CSV file (columns id, name, address,
    /// postcode, latitude, longitude and, optionally, vaccines; docs/operations.md). Nothing
    /// changes unless every line is right; prints what changed as JSON.
    Import(RegionFile),
    /// Close a centre: it publishes no capacity and its open appointments are offered to
    /// nobody; what is booked stays.
    Close(RegionCentre),
    /// Open a closed centre again.
    Open(RegionCentre),
}

/// A centre of a region.
#[derive(clap::Args)]
struct RegionCentre {
    /// The centre's id.
    centre: String,
    #[arg(long)]
    region: String,
}

/// A region's set-up file to import.
#[derive(clap::Args)]
struct RegionFile {
    /// The file; - for standard input.
    file: PathBuf,
    /// The region (`bw`) the file sets up.
    #[arg(long)]
    region: String,
    /// Check every line and say what would change, without changing it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum PostcodesAction {
    /// Create or move postcode areas' centroids from a CSV file (columns postcode, latitude,
    /// longitude). Nothing changes unless every line is right; prints the counts as JSON.
    Import {
        /// The file; - for standard input.
        file: PathBuf,
        /// Check every line and count what would change, without changing it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Seal again, under the last of `secrets.personal_data_keys`, every phone number, email
    /// address and message recipient sealed under an older key or stored before sealing, while
    /// the system runs. Every gateway, allocator and notifier must know that key first. Prints
    /// the counts as JSON; exits 1 if a value did not open.
    Rotate {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
        /// Only count the rows to seal again.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum PassAction {
    /// Check a pass (the QR code's content) offline with the published public keys only, as a
    /// door does; print what it says, or why it is refused (exit 1). Needs no configuration.
    Verify {
        /// The pass; - for standard input.
        pass: String,
        /// The public keys: a file with the JWK set from GET /.well-known/jwks.json.
        #[arg(long)]
        keys: PathBuf,
    },
}

#[derive(Subcommand)]
enum StaffAction {
    /// Create a staff account. The password is read from the first line of --password-file or
    /// of standard input, so it never shows in `ps` or the shell history.
    Add {
        username: String,
        /// callcentre_agent, centre_staff, region_admin or analyst.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        region: String,
        /// The centre (centre staff only).
        #[arg(long)]
        centre: Option<String>,
        /// File whose first line is the password (default: standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Create the accounts of a CSV file (columns username, role and, for centre staff,
    /// centre), each with a fresh password, printed once as JSON. Nothing is created unless
    /// every line is right.
    Import(RegionFile),
    /// Give an account a fresh password (printed once) and end its sessions.
    ResetPassword { username: String },
    /// Disable an account: it can no longer log in and its sessions end at once.
    Disable { username: String },
    /// Enable a disabled account again; its old sessions stay ended.
    Enable { username: String },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        format!("{text:?} is not a role: use callcentre_agent, centre_staff, region_admin or analyst")
    })
}

#[derive(Subcommand)]
enum RoomsAction {
    /// Every room with its configuration, counters and draws, as JSON.
    List,
    /// One room with its configuration, counters and draws (with their seeds), as JSON.
    Show { room: String },
    /// Create a room, or change the given settings of an existing one (the others keep their
    /// value; a new room starts from the defaults).
    Set {
        room: String,
        /// fifo, random, passthrough or closed.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<RoomMode>,
        /// When the pre-queue is drawn and the room opens (RFC 3339, e.g. 2026-12-01T08:00:00Z).
        #[arg(long)]
        opens_at: Option<DateTime<Utc>>,
        #[arg(long)]
        admit_per_minute: Option<u32>,
        #[arg(long)]
        max_active: Option<u32>,
        #[arg(long)]
        session_seconds: Option<u32>,
        #[arg(long)]
        idle_seconds: Option<u32>,
        /// Leading zero bits of proof of work per join (0: off).
        #[arg(long)]
        pow_difficulty: Option<u8>,
        /// Regions whose registration API needs an admission of this room (comma-separated;
        /// empty for none).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        guards: Option<Vec<String>>,
        /// Where admitted visitors go (a path on this site).
        #[arg(long)]
        target_path: Option<String>,
    },
}

fn parse_mode(text: &str) -> Result<RoomMode, String> {
    serde_json::from_value(serde_json::Value::from(text))
        .map_err(|_| format!("{text:?} is not a mode: use fifo, random, passthrough or closed"))
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
    if let Command::Simulate(args) = cli.command {
        return match drawbridge_simulations::cli::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<NothingTested>() => {
            eprintln!("{error}");
            ExitCode::from(3)
        }
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
    if let Command::Replay { manifest } = &cli.command {
        return replay(manifest);
    }
    if let Command::Pass {
        action: PassAction::Verify { pass, keys },
    } = &cli.command
    {
        return verify_pass(pass, keys);
    }
    if let Command::Audit {
        manifests: Some(dir), ..
    } = &cli.command
    {
        let manifests = drawbridge_simulations::replay::load_manifests(dir)?;
        return report(&drawbridge::audit::manifests(&manifests));
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
        Command::Allocator {
            once,
            region,
            beacon_round,
            beacon_randomness,
        } => {
            if once {
                let allocator = drawbridge_allocator::connect(&settings, shutdown).await?;
                let beacon = match (beacon_round, beacon_randomness) {
                    (Some(round), Some(randomness)) => Some(BeaconValue {
                        round,
                        randomness: unhex(&randomness).context("--beacon-randomness must be hex digits")?,
                    }),
                    _ => None,
                };
                let ticks = allocator.tick_regions(region.as_deref(), beacon.as_ref()).await?;
                println!("{}", serde_json::to_string_pretty(&ticks)?);
            } else {
                let allocator = drawbridge_allocator::build(&settings, shutdown.clone()).await?;
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
        Command::Purge { dry_run } => {
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let purged =
                drawbridge_gateway::purge::purge(&pool, &settings.retention, Utc::now(), dry_run).await?;
            let counts: serde_json::Map<String, serde_json::Value> = purged
                .into_iter()
                .map(|(kind, count)| (kind.as_str().to_owned(), count.into()))
                .collect();
            println!("{}", serde_json::json!({ "dry_run": dry_run, "purged": counts }));
        }
        Command::Audit { region, last, .. } => {
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let audits =
                drawbridge::audit::run(&pool, &settings.secrets.hash_key()?, region.as_deref(), last).await?;
            report(&audits)?;
        }
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
        }
        | Command::Replay { .. }
        | Command::Pass { .. }
        | Command::Simulate(_) => unreachable!("handled before loading configuration"),
        Command::Rooms { action } => rooms(&settings, action).await?,
        Command::Keys {
            action: KeysAction::Rotate { batch, dry_run },
        } => {
            let keys = settings.secrets.personal_data_keys()?;
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let rotation = if dry_run {
                drawbridge::keys::count(&pool, &keys).await?
            } else {
                drawbridge::keys::rotate(&pool, &keys, batch, |so_far| {
                    tracing::info!(
                        registrants = so_far.registrants,
                        messages = so_far.messages,
                        "sealed again so far"
                    );
                })
                .await?
            };
            println!("{}", serde_json::to_string_pretty(&rotation)?);
            if !rotation.unreadable.is_empty() {
                anyhow::bail!(
                    "some values did not open: is every key that sealed them in secrets.personal_data_keys?"
                );
            }
        }
        Command::Staff {
            action:
                StaffAction::Add {
                    username,
                    role,
                    region,
                    centre,
                    password_file,
                },
        } => {
            let text = match &password_file {
                Some(file) => read(file)?,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from standard input")?;
                    line
                }
            };
            let password = text.lines().next().unwrap_or_default().to_owned();
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let id = drawbridge_platform::staff::add(
                &mut *pool.acquire().await?,
                &NewStaff {
                    username: &username,
                    password: &password,
                    role,
                    region: &region,
                    centre: centre.as_deref(),
                    // Typed by the operator, not generated and shown to someone else.
                    must_change_password: false,
                },
            )
            .await?;
            println!(
                "{}",
                serde_json::json!({ "id": id, "username": username, "role": role, "region": region, "centre": centre })
            );
        }
        Command::Staff {
            action:
                StaffAction::Import(RegionFile {
                    file,
                    region,
                    dry_run,
                }),
        } => {
            let text = read(&file)?;
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let mut tx = pool.begin().await?;
            let imported = drawbridge_platform::staff::import(&mut tx, &region, &text, dry_run).await?;
            tx.commit().await?;
            println!("{}", serde_json::to_string_pretty(&imported)?);
        }
        Command::Staff {
            action: StaffAction::ResetPassword { username },
        } => {
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let mut tx = pool.begin().await?;
            let (id, password) = drawbridge_platform::staff::reset_password(&mut tx, None, &username).await?;
            tx.commit().await?;
            println!(
                "{}",
                serde_json::json!({ "id": id, "username": username, "password": password })
            );
        }
        Command::Centres {
            action:
                CentresAction::Import(RegionFile {
                    file,
                    region,
                    dry_run,
                }),
        } => {
            let setups = drawbridge_platform::centres::read_centres(&read(&file)?)?;
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let mut tx = pool.begin().await?;
            let imported =
                drawbridge_platform::centres::save_centres(&mut tx, &region, setups, dry_run).await?;
            tx.commit().await?;
            println!("{}", serde_json::to_string_pretty(&imported)?);
        }
        Command::Centres {
            action: action @ (CentresAction::Close(_) | CentresAction::Open(_)),
        } => {
            let (RegionCentre { centre, region }, closed) = match action {
                CentresAction::Close(which) => (which, true),
                CentresAction::Open(which) => (which, false),
                CentresAction::Import(_) => unreachable!("matched above"),
            };
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            drawbridge_platform::centres::set_closed(&mut *pool.acquire().await?, &region, &centre, closed)
                .await?;
            println!("{}", serde_json::json!({ "centre": centre, "closed": closed }));
        }
        Command::Postcodes {
            action: PostcodesAction::Import { file, dry_run },
        } => {
            let centroids = drawbridge_platform::centres::read_postcodes(&read(&file)?)?;
            let pool = postgres::connect_and_migrate(&settings.database).await?;
            let mut tx = pool.begin().await?;
            let imported = drawbridge_platform::centres::save_postcodes(&mut tx, centroids, dry_run).await?;
            tx.commit().await?;
            use drawbridge_platform::table_file::Change;
            println!(
                "{}",
                serde_json::json!({
                    "dry_run": dry_run,
                    "created": imported.count(Change::Created),
                    "changed": imported.count(Change::Changed),
                    "unchanged": imported.count(Change::Unchanged),
                })
            );
        }
        Command::Staff {
            action: StaffAction::Disable { username },
        } => set_disabled(&settings, &username, true).await?,
        Command::Staff {
            action: StaffAction::Enable { username },
        } => set_disabled(&settings, &username, false).await?,
    }
    Ok(())
}

/// Disables or enables a staff account, and prints it.
async fn set_disabled(settings: &Settings, username: &str, disabled: bool) -> anyhow::Result<()> {
    let pool = postgres::connect_and_migrate(&settings.database).await?;
    let mut connection = pool.acquire().await?;
    let id = if disabled {
        drawbridge_platform::staff::disable(&mut connection, None, username).await?
    } else {
        drawbridge_platform::staff::enable(&mut connection, None, username).await?
    };
    println!(
        "{}",
        serde_json::json!({ "id": id, "username": username, "disabled": disabled })
    );
    Ok(())
}

async fn rooms(settings: &Settings, action: RoomsAction) -> anyhow::Result<()> {
    let store = RoomStore::new(redis::connect(&settings.redis).await?, &settings.redis.key_prefix);
    let described = match action {
        RoomsAction::List => {
            let mut rooms = Vec::new();
            for room in store.rooms().await? {
                rooms.extend(store.describe(&room).await?);
            }
            serde_json::to_value(rooms)?
        }
        RoomsAction::Show { room } => {
            let described = store.describe(&room).await?;
            serde_json::to_value(described.with_context(|| format!("there is no room {room:?}"))?)?
        }
        RoomsAction::Set {
            room,
            mode,
            opens_at,
            admit_per_minute,
            max_active,
            session_seconds,
            idle_seconds,
            pow_difficulty,
            guards,
            target_path,
        } => {
            anyhow::ensure!(
                is_valid_name(&room),
                "{room:?} is not a room name: use 1 to 40 of a-z, 0-9 and -"
            );
            let current = store.describe(&room).await?.map(|d| d.config);
            let config = current.unwrap_or_default();
            let config = RoomConfig {
                mode: mode.unwrap_or(config.mode),
                opens_at: opens_at.unwrap_or(config.opens_at),
                admit_per_minute: admit_per_minute.unwrap_or(config.admit_per_minute),
                max_active: max_active.unwrap_or(config.max_active),
                session_seconds: session_seconds.unwrap_or(config.session_seconds),
                idle_seconds: idle_seconds.unwrap_or(config.idle_seconds),
                pow_difficulty: pow_difficulty.unwrap_or(config.pow_difficulty),
                guards: guards.unwrap_or(config.guards),
                target_path: target_path.unwrap_or(config.target_path),
            };
            config.validate()?;
            let created = store.put_config(&room, &config).await?;
            eprintln!("room {room} {}", if created { "created" } else { "changed" });
            serde_json::to_value(store.describe(&room).await?)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&described)?);
    Ok(())
}

async fn load_demo(settings: &Settings) -> anyhow::Result<()> {
    let pool = postgres::connect_and_migrate(&settings.database).await?;
    let summary = drawbridge::demo::load(&pool)
        .await
        .context("loading the demo data")?;
    let staff = drawbridge::demo::add_staff(&pool)
        .await
        .context("creating the demo staff accounts")?;
    tracing::info!(?summary, staff, "demo data loaded");
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

fn verify_pass(pass: &str, keys: &std::path::Path) -> anyhow::Result<()> {
    let keys = PublicPassKeys::from_jwk_set(&read(keys)?)
        .with_context(|| format!("{} holds no usable pass keys", keys.display()))?;
    let pass = if pass == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the pass from standard input")?
    } else {
        pass.to_owned()
    };
    let checked = CheckinPass::verify(&keys, &pass, chrono::Utc::now())
        .map_err(|refused| anyhow::anyhow!("the pass is NOT valid: {refused}"))?;
    println!(
        "valid pass: booking {} ({}) at centre {}, first appointment {}{}",
        checked.booking,
        BookingReference::of(checked.booking),
        checked.centre,
        checked.first_at.to_rfc3339(),
        checked
            .second_at
            .map(|second| format!(", second {}", second.to_rfc3339()))
            .unwrap_or_default()
    );
    Ok(())
}

fn replay(file: &std::path::Path) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the manifest from standard input")?
    } else {
        read(file)?
    };
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{} is not a draw manifest", file.display()))?;
    let replay = manifest.replay();
    if !replay.reproduced() {
        anyhow::bail!(
            "draw {} does NOT reproduce: {}",
            manifest.draw,
            replay.problems.join("; ")
        );
    }
    for note in &replay.notes {
        eprintln!("note: {note}");
    }
    println!(
        "draw {} reproduced {}: seed matches its commitment, {} candidates, {} pairs, {} offers, \
         inputs sha256 {}, outputs sha256 {}",
        manifest.draw,
        if replay.notes.is_empty() {
            "exactly"
        } else {
            "as far as it can be checked (see the note)"
        },
        manifest.candidates.len(),
        manifest.pairs.len(),
        manifest.matches.len(),
        manifest.inputs_digest,
        manifest.outputs_digest
    );
    Ok(())
}

/// The audit found nothing wrong but could not test anything for bias either.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NothingTested(String);

/// Prints the audits as JSON, then per draw in words what was tested and what was not, and
/// fails unless every draw replays and no test that ran failed.
fn report(audits: &[drawbridge::audit::DrawAudit]) -> anyhow::Result<()> {
    use drawbridge::audit::Verdict;
    println!("{}", serde_json::to_string_pretty(audits)?);
    for audit in audits {
        let replayed = if audit.problems.is_empty() {
            "replays exactly".to_owned()
        } else {
            format!("does NOT reproduce: {}", audit.problems.join("; "))
        };
        eprintln!(
            "draw {} ({}, pool {}): {replayed}",
            audit.draw, audit.region, audit.pool
        );
        for note in &audit.notes {
            eprintln!("  note: {note}");
        }
        for test in &audit.tests {
            match test.verdict {
                Verdict::Passed => eprintln!("  passed: {}", test.name),
                Verdict::Failed => eprintln!("  FAILED: {}", test.name),
                Verdict::NotTested => eprintln!(
                    "  not tested: {}: {}",
                    test.name,
                    test.not_tested_because.as_deref().unwrap_or_default()
                ),
            }
        }
    }
    let count = |verdict: Verdict| {
        audits
            .iter()
            .flat_map(|a| &a.tests)
            .filter(|t| t.verdict == verdict)
            .count()
    };
    let failed = audits.iter().filter(|a| !a.passed()).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} audited draws failed a check (see above)",
            audits.len()
        );
    }
    if audits.is_empty() {
        return Err(NothingTested("no completed draw to audit: nothing was tested".into()).into());
    }
    let (passed, not_tested) = (count(Verdict::Passed), count(Verdict::NotTested));
    if passed == 0 {
        return Err(NothingTested(format!(
            "{} draws audited: every one replays exactly, but no bias test could run on any of them \
             (see above): nothing was tested for bias",
            audits.len()
        ))
        .into());
    }
    eprintln!(
        "{} draws audited: every one replays exactly; bias tests: {passed} passed, {not_tested} not tested (see above)",
        audits.len()
    );
    Ok(())
}

/// The text of `file`, or of standard input for `-`.
fn read(file: &std::path::Path) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read standard input")?;
        return Ok(text);
    }
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
