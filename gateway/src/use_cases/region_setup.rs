//! What a region admin sets up: the region's centres and the postcode areas distances are
//! measured from, its staff accounts, its waiting rooms and its policy, and what they read: the
//! audit log. Every change is written to the audit log in the change's transaction. The work
//! itself is the platform's (`drawbridge_platform::{centres, staff, policies}`), which the
//! `drawbridge centres|postcodes|staff` commands call too. A region admin acts for their own
//! region only: every function here works on `member.region`, never on a region it is given.

use drawbridge_domain::{Policy, Role, RoomConfig, StaffMember};
use drawbridge_platform::centres::{self, Centre, CentreSetup, PostcodeCentroid};
use drawbridge_platform::policies::{self, PolicyVersion, PublishError, PublishedPolicy};
use drawbridge_platform::staff::{self as accounts, Account, ImportedAccount, NewStaff};
use drawbridge_platform::table_file::{Change, FileErrors, Imported};
use serde_json::json;

use super::{audit, forbidden};
use crate::error::ApiError;
use crate::rooms::store::Description;
use crate::store::staff::{self, ActionFilter, LoggedAction};
use crate::AppState;

/// Most audit entries one page shows.
const MAX_ACTIONS: i64 = 500;

/// `Ok(Err(lines))`: the file was read, and these lines are not right; nothing changed.
pub type ImportResult<T> = Result<Result<Imported<T>, FileErrors>, ApiError>;

fn admin(member: &StaffMember) -> Result<(), ApiError> {
    member.may_administer(&member.region).map_err(forbidden)
}

/// The region's centres, by name.
pub async fn centres(state: &AppState, member: &StaffMember) -> Result<Vec<Centre>, ApiError> {
    admin(member)?;
    let mut connection = state.store.pool().acquire().await?;
    Ok(centres::centres(&mut connection, &member.region).await?)
}

/// One centre of the region.
pub async fn centre(state: &AppState, member: &StaffMember, id: &str) -> Result<Centre, ApiError> {
    centres(state, member)
        .await?
        .into_iter()
        .find(|centre| centre.setup.id == id)
        .ok_or_else(|| ApiError::not_found(format!("There is no centre {id:?} in region {}.", member.region)))
}

/// Creates or changes centres: one from the console's form, or the lines of a file.
pub async fn save_centres(
    state: &AppState,
    member: &StaffMember,
    setups: Vec<(usize, CentreSetup)>,
    dry_run: bool,
) -> ImportResult<CentreSetup> {
    admin(member)?;
    let mut tx = state.store.begin().await?;
    let imported = match centres::save_centres(&mut tx, &member.region, setups, dry_run).await {
        Ok(imported) => imported,
        Err(centres::SetupError::Lines(lines)) => return Ok(Err(lines)),
        Err(other) => return Err(other.into()),
    };
    if !dry_run {
        for row in imported.rows.iter().filter(|row| row.change != Change::Unchanged) {
            let detail = json!({ "change": row.change, "setup": row.row });
            audit(&mut tx, member, "centre.save", Some(&row.row.id), None, detail).await?;
        }
        tx.commit().await?;
    }
    Ok(Ok(imported))
}

/// Closes a centre of the region, or opens it again.
pub async fn set_centre_closed(
    state: &AppState,
    member: &StaffMember,
    id: &str,
    closed: bool,
) -> Result<(), ApiError> {
    admin(member)?;
    let mut tx = state.store.begin().await?;
    centres::set_closed(&mut tx, &member.region, id, closed).await?;
    let action = if closed { "centre.close" } else { "centre.open" };
    audit(&mut tx, member, action, Some(id), None, json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// How many postcode areas are known (in every region).
pub async fn postcode_count(state: &AppState, member: &StaffMember) -> Result<i64, ApiError> {
    admin(member)?;
    let mut connection = state.store.pool().acquire().await?;
    Ok(centres::postcode_count(&mut connection).await?)
}

/// Creates or moves postcode areas' centroids from the lines of a file.
pub async fn save_postcodes(
    state: &AppState,
    member: &StaffMember,
    centroids: Vec<(usize, PostcodeCentroid)>,
    dry_run: bool,
) -> ImportResult<PostcodeCentroid> {
    admin(member)?;
    let mut tx = state.store.begin().await?;
    let imported = centres::save_postcodes(&mut tx, centroids, dry_run).await?;
    if !dry_run {
        let detail = json!({
            "created": imported.count(Change::Created),
            "changed": imported.count(Change::Changed),
        });
        audit(&mut tx, member, "postcodes.import", None, None, detail).await?;
        tx.commit().await?;
    }
    Ok(Ok(imported))
}

/// The region's staff accounts.
pub async fn staff_accounts(state: &AppState, member: &StaffMember) -> Result<Vec<Account>, ApiError> {
    admin(member)?;
    let mut connection = state.store.pool().acquire().await?;
    Ok(accounts::accounts(&mut connection, &member.region).await?)
}

/// Creates one account of the region with a fresh password, which it answers (shown once).
pub async fn add_staff(
    state: &AppState,
    member: &StaffMember,
    username: &str,
    role: Role,
    centre: Option<&str>,
) -> Result<String, ApiError> {
    admin(member)?;
    let password = accounts::new_password();
    let mut tx = state.store.begin().await?;
    let new = NewStaff {
        username,
        password: &password,
        role,
        region: &member.region,
        centre,
        must_change_password: true,
    };
    let id = accounts::add(&mut tx, &new).await?;
    let detail = json!({ "username": username, "role": role, "centre": centre });
    audit(&mut tx, member, "staff.create", centre, Some(id), detail).await?;
    tx.commit().await?;
    Ok(password)
}

/// Creates the accounts of a staff file in the region, each with a fresh password.
pub async fn import_staff(
    state: &AppState,
    member: &StaffMember,
    text: &str,
    dry_run: bool,
) -> ImportResult<ImportedAccount> {
    admin(member)?;
    let mut tx = state.store.begin().await?;
    let imported = match accounts::import(&mut tx, &member.region, text, dry_run).await {
        Ok(imported) => imported,
        Err(accounts::StaffError::Lines(lines)) => return Ok(Err(lines)),
        Err(other) => return Err(other.into()),
    };
    if !dry_run {
        let usernames: Vec<&str> = imported
            .rows
            .iter()
            .map(|row| row.row.username.as_str())
            .collect();
        audit(
            &mut tx,
            member,
            "staff.import",
            None,
            None,
            json!({ "usernames": usernames }),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(Ok(imported))
}

/// What an admin can do to an account of their region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    Disable,
    Enable,
    /// A fresh password, answered once; the account's sessions end.
    ResetPassword,
}

/// Changes an account of the region; answers the new password of a reset.
pub async fn change_account(
    state: &AppState,
    member: &StaffMember,
    username: &str,
    change: AccountChange,
) -> Result<Option<String>, ApiError> {
    admin(member)?;
    let region = Some(member.region.as_str());
    let mut tx = state.store.begin().await?;
    let (id, password, action) = match change {
        AccountChange::Disable => (
            accounts::disable(&mut tx, region, username).await?,
            None,
            "staff.disable",
        ),
        AccountChange::Enable => (
            accounts::enable(&mut tx, region, username).await?,
            None,
            "staff.enable",
        ),
        AccountChange::ResetPassword => {
            let (id, password) = accounts::reset_password(&mut tx, region, username).await?;
            (id, Some(password), "staff.reset_password")
        }
    };
    audit(
        &mut tx,
        member,
        action,
        None,
        Some(id),
        json!({ "username": username }),
    )
    .await?;
    tx.commit().await?;
    Ok(password)
}

/// Whether a room is the region's: it guards the region's registration and nothing else.
/// Rooms in front of several regions, or of none, are the operators' (`/v1/admin/rooms`).
fn is_regions(room: &Description, region: &str) -> bool {
    room.config.guards == [region]
}

/// The region's waiting rooms with their live counters.
pub async fn rooms(state: &AppState, member: &StaffMember) -> Result<Vec<Description>, ApiError> {
    admin(member)?;
    let mut rooms = Vec::new();
    for name in state.rooms.store.rooms().await? {
        if let Some(room) = state.rooms.store.describe(&name).await? {
            if is_regions(&room, &member.region) {
                rooms.push(room);
            }
        }
    }
    Ok(rooms)
}

/// One of the region's rooms; `None` for a name no room has yet.
pub async fn room(
    state: &AppState,
    member: &StaffMember,
    name: &str,
) -> Result<Option<Description>, ApiError> {
    admin(member)?;
    match state.rooms.store.describe(name).await? {
        Some(room) if !is_regions(&room, &member.region) => Err(ApiError::not_found(format!(
            "The room {name:?} is not one of region {}'s rooms.",
            member.region
        ))),
        found => Ok(found),
    }
}

/// The configuration of a new room of the region: closed, in front of its registration form.
pub fn new_room(member: &StaffMember) -> RoomConfig {
    RoomConfig {
        mode: drawbridge_domain::RoomMode::Closed,
        guards: vec![member.region.clone()],
        target_path: format!("/regions/{}/register", member.region),
        ..RoomConfig::default()
    }
}

/// Creates or changes one of the region's rooms (every gateway follows within
/// `rooms.refresh_millis`); the room keeps guarding the region alone. True when created.
pub async fn set_room(
    state: &AppState,
    member: &StaffMember,
    name: &str,
    mut config: RoomConfig,
) -> Result<bool, ApiError> {
    if !drawbridge_domain::waiting_room::room::is_valid_name(name) {
        return Err(ApiError::invalid(
            "room",
            format!("{name:?} is not a room name: use 1 to 40 of a-z, 0-9 and -."),
        ));
    }
    room(state, member, name).await?;
    config.guards = vec![member.region.clone()];
    config
        .validate()
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    // Redis holds the room, Postgres the audit log: the entry is written first, so no change
    // goes unrecorded (a failed write leaves an entry for a change that did not happen).
    let mut tx = state.store.begin().await?;
    audit(
        &mut tx,
        member,
        "room.set",
        None,
        None,
        json!({ "room": name, "config": config }),
    )
    .await?;
    tx.commit().await?;
    let created = state.rooms.store.put_config(name, &config).await?;
    tracing::info!(room = %name, created, ?config, by = %member.username, "room configured");
    Ok(created)
}

/// Every published version of the region's policy, newest first.
pub async fn policy_versions(state: &AppState, member: &StaffMember) -> Result<Vec<PolicyVersion>, ApiError> {
    admin(member)?;
    let mut connection = state.store.pool().acquire().await?;
    Ok(policies::versions(&mut connection, &member.region).await?)
}

/// One published version of the region's policy.
pub async fn policy_version(
    state: &AppState,
    member: &StaffMember,
    version: u32,
) -> Result<PublishedPolicy, ApiError> {
    admin(member)?;
    let mut connection = state.store.pool().acquire().await?;
    policies::version(&mut connection, &member.region, version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Region {} has no policy version {version}.",
                member.region
            ))
        })
}

/// Checks a policy document as publishing would, without publishing it: it must be valid, be
/// the region's, and have a version above the newest.
pub async fn check_policy(
    state: &AppState,
    member: &StaffMember,
    document: &str,
) -> Result<Policy, ApiError> {
    admin(member)?;
    let policy = Policy::from_toml(document).map_err(|e| ApiError::invalid("document", e.to_string()))?;
    if policy.region != member.region {
        return Err(ApiError::invalid(
            "document",
            format!(
                "This policy is for region {:?}; you set up region {:?}.",
                policy.region, member.region
            ),
        ));
    }
    let current = state.policies.current(&member.region).await?;
    if policy.version <= current.version {
        return Err(ApiError::invalid(
            "document",
            format!(
                "The newest version is {}; a new policy needs version = {} or higher.",
                current.version,
                current.version + 1
            ),
        ));
    }
    Ok(policy)
}

/// Publishes a policy document as the region's newest version, after the checks of
/// [`check_policy`]; every draw from then on follows it.
pub async fn publish_policy(
    state: &AppState,
    member: &StaffMember,
    document: &str,
) -> Result<PublishedPolicy, ApiError> {
    check_policy(state, member, document).await?;
    let mut tx = state.store.begin().await?;
    let published = policies::publish(&mut tx, document)
        .await
        .map_err(|error| match error {
            PublishError::VersionNotIncreased { .. } | PublishError::Invalid(_) => {
                ApiError::invalid("document", error.to_string())
            }
            other => other.into(),
        })?;
    let detail = json!({ "version": published.version, "digest": published.digest });
    audit(&mut tx, member, "policy.publish", None, None, detail).await?;
    tx.commit().await?;
    state.policies.forget(&member.region);
    Ok(published)
}

/// The region's audit log, newest first, as filtered.
pub async fn audit_log(
    state: &AppState,
    member: &StaffMember,
    filter: &ActionFilter,
) -> Result<Vec<LoggedAction>, ApiError> {
    admin(member)?;
    Ok(staff::actions(state.store.pool(), &member.region, filter, MAX_ACTIONS).await?)
}

/// The kinds of action in the region's audit log, for its filter.
pub async fn audit_kinds(state: &AppState, member: &StaffMember) -> Result<Vec<String>, ApiError> {
    admin(member)?;
    Ok(staff::action_kinds(state.store.pool(), &member.region).await?)
}
