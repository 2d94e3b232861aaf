//! The region admin's staff accounts, `/staff/admin/staff`: every account of the region with
//! its role, centre and state; creating one, importing many from a CSV file (dry run first),
//! disabling, enabling, and a fresh password. A new password is shown once, to be handed to
//! its person. The work is `use_cases::region_setup`'s.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use drawbridge_domain::language::when;
use drawbridge_domain::Role;
use serde::{Deserialize, Serialize};

use super::console::{Console, DoneQuery, TIMEZONE};
use super::imported::{self, Imported};
use super::upload::{Upload, UploadForm};
use crate::error::ApiError;
use crate::use_cases::region_setup::{self, AccountChange};
use crate::AppState;

const STAFF: &str = "/staff/admin/staff";

#[derive(Serialize)]
struct AccountListed {
    username: String,
    role: String,
    centre: Option<String>,
    created: String,
    disabled: bool,
}

#[derive(Serialize)]
struct StaffView {
    accounts: Vec<AccountListed>,
    roles: Vec<&'static str>,
    centres: Vec<(String, String)>,
    done: Option<String>,
}

/// `GET /staff/admin/staff`.
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<DoneQuery>,
    console: Console,
) -> HttpResponse {
    let member = &console.member;
    let found = async {
        let accounts = region_setup::staff_accounts(&state, member).await?;
        let centres = region_setup::centres(&state, member).await?;
        Ok::<_, ApiError>((accounts, centres))
    }
    .await;
    let (accounts, centres) = match found {
        Ok(found) => found,
        Err(refused) => return console.refused(&state, "/staff", &refused),
    };
    let view = StaffView {
        accounts: accounts
            .into_iter()
            .map(|account| AccountListed {
                created: when(account.created_at, TIMEZONE, console.language),
                username: account.username,
                role: account.role,
                centre: account.centre,
                disabled: account.disabled,
            })
            .collect(),
        roles: Role::ALL.iter().map(|role| role.as_str()).collect(),
        centres: centres
            .into_iter()
            .map(|centre| (centre.setup.id, centre.setup.name))
            .collect(),
        done: console.confirmation(&state, &query),
    };
    console.page(&state, "admin_staff.html", StatusCode::OK, view)
}

#[derive(Serialize)]
struct PasswordView<'a> {
    username: &'a str,
    password: String,
    created: bool,
}

fn password_page(
    state: &AppState,
    console: &Console,
    username: &str,
    password: String,
    created: bool,
) -> HttpResponse {
    let view = PasswordView {
        username,
        password,
        created,
    };
    console.page(state, "admin_password.html", StatusCode::OK, view)
}

#[derive(Deserialize)]
pub struct NewAccountForm {
    csrf: String,
    username: String,
    role: String,
    #[serde(default)]
    centre: String,
}

/// `POST /staff/admin/staff`: creates one account.
pub async fn create(
    state: web::Data<AppState>,
    form: web::Form<NewAccountForm>,
    console: Console,
) -> HttpResponse {
    let created = async {
        console.check_form(&form.csrf)?;
        let role = Role::parse(&form.role).ok_or_else(|| {
            ApiError::invalid(
                "role",
                "Please choose a role: callcentre_agent, centre_staff, region_admin or analyst.",
            )
        })?;
        // The form offers a centre to every role; only centre staff keep it.
        let centre =
            Some(form.centre.as_str()).filter(|centre| !centre.is_empty() && role == Role::CentreStaff);
        region_setup::add_staff(&state, &console.member, form.username.trim(), role, centre).await
    }
    .await;
    match created {
        Ok(password) => password_page(&state, &console, form.username.trim(), password, true),
        Err(refused) => console.refused(&state, STAFF, &refused),
    }
}

/// `POST /staff/admin/staff/import`.
pub async fn import(state: web::Data<AppState>, form: UploadForm, console: Console) -> HttpResponse {
    let upload = match Upload::checked(&console, form).await {
        Ok(upload) => upload,
        Err(refused) => return console.refused(&state, STAFF, &refused),
    };
    let dry_run = upload.ticked("dry_run");
    let text = upload.text().unwrap_or_default();
    let page = Imported::new("staff", "/staff/admin/staff/import", STAFF, text, dry_run);
    match region_setup::import_staff(&state, &console.member, text, dry_run).await {
        Ok(saved) => imported::page(&state, &console, page, saved, |account| {
            vec![
                account.username.clone(),
                account.role.as_str().to_owned(),
                account.centre.clone().unwrap_or_default(),
                account.password.clone().unwrap_or_default(),
            ]
        }),
        Err(refused) => console.refused(&state, STAFF, &refused),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    csrf: String,
}

/// `POST /staff/admin/staff/{username}/{change}`: `disable`, `enable` or `password`.
pub async fn change(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<ChangeForm>,
    console: Console,
) -> HttpResponse {
    let (username, change) = path.into_inner();
    let changed = async {
        console.check_form(&form.csrf)?;
        let change = match change.as_str() {
            "disable" => AccountChange::Disable,
            "enable" => AccountChange::Enable,
            "password" => AccountChange::ResetPassword,
            _ => {
                return Err(ApiError::not_found(format!(
                    "There is no change {change:?} of an account."
                )))
            }
        };
        region_setup::change_account(&state, &console.member, &username, change).await
    }
    .await;
    match changed {
        Ok(Some(password)) => password_page(&state, &console, &username, password, false),
        Ok(None) => console.see_other(&format!("{STAFF}?done=staff_{change}d")),
        Err(refused) => console.refused(&state, STAFF, &refused),
    }
}
