//! The region admin's centres, `/staff/admin/centres`: the region's centres with their vaccines
//! and whether they are open, a form for one centre (new, or its address, coordinates and
//! vaccines changed), closing and opening a centre, and importing centres and postcode areas
//! from CSV files with a dry run first. The work is `use_cases::region_setup`'s.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use drawbridge_domain::Label;
use drawbridge_platform::centres::{read_centres, read_postcodes, CentreSetup};
use drawbridge_platform::table_file::{Line, LineError};
use serde::{Deserialize, Serialize};

use super::console::{Console, DoneQuery};
use super::imported::{self, Imported};
use super::upload::{Upload, UploadForm};
use crate::error::ApiError;
use crate::use_cases::{region_setup, rules};
use crate::AppState;

const CENTRES: &str = "/staff/admin/centres";

#[derive(Serialize)]
struct CentreListed {
    id: String,
    name: String,
    address: String,
    vaccines: Vec<Label>,
    closed: bool,
}

#[derive(Serialize)]
struct CentresView {
    centres: Vec<CentreListed>,
    postcode_areas: i64,
    done: Option<String>,
}

/// `GET /staff/admin/centres`.
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<DoneQuery>,
    console: Console,
) -> HttpResponse {
    let member = &console.member;
    let found = async {
        let centres = region_setup::centres(&state, member).await?;
        let postcode_areas = region_setup::postcode_count(&state, member).await?;
        let published = rules::policy(&state, &member.region).await?;
        Ok::<_, ApiError>((centres, postcode_areas, published))
    }
    .await;
    let (centres, postcode_areas, published) = match found {
        Ok(found) => found,
        Err(refused) => return console.refused(&state, "/staff", &refused),
    };
    let policy = &published.policy;
    let view = CentresView {
        centres: centres
            .into_iter()
            .map(|centre| CentreListed {
                vaccines: match &centre.setup.vaccines {
                    Some(codes) => codes.iter().map(|code| policy.vaccine_name(code)).collect(),
                    None => policy.vaccines.iter().map(|v| v.name.clone()).collect(),
                },
                id: centre.setup.id,
                name: centre.setup.name,
                address: centre.setup.address,
                closed: centre.closed,
            })
            .collect(),
        postcode_areas,
        done: console.confirmation(&state, &query),
    };
    console.page(&state, "admin_centres.html", StatusCode::OK, view)
}

/// What the centre form holds, shown again when refused.
#[derive(Serialize, Default)]
struct Entered {
    id: String,
    name: String,
    address: String,
    postcode: String,
    latitude: String,
    longitude: String,
    vaccines: Vec<String>,
}

impl Entered {
    fn from_setup(setup: &CentreSetup) -> Entered {
        Entered {
            id: setup.id.clone(),
            name: setup.name.clone(),
            address: setup.address.clone(),
            postcode: setup.postcode.clone(),
            latitude: setup.latitude.to_string(),
            longitude: setup.longitude.to_string(),
            vaccines: setup.vaccines.clone().unwrap_or_default(),
        }
    }

    /// The form's fields; each ticked vaccine is a field `vaccines` of its own.
    fn from_form(fields: Vec<(String, String)>) -> (Entered, String) {
        let mut entered = Entered::default();
        let mut csrf = String::new();
        for (name, value) in fields {
            match name.as_str() {
                "csrf" => csrf = value,
                "id" => entered.id = value,
                "name" => entered.name = value,
                "address" => entered.address = value,
                "postcode" => entered.postcode = value,
                "latitude" => entered.latitude = value,
                "longitude" => entered.longitude = value,
                "vaccines" => entered.vaccines.push(value),
                _ => {}
            }
        }
        (entered, csrf)
    }

    /// The centre the form describes, checked as a line of a centres file is.
    fn setup(&self) -> Result<CentreSetup, LineError> {
        let fields = [
            ("id", &self.id),
            ("name", &self.name),
            ("address", &self.address),
            ("postcode", &self.postcode),
            ("latitude", &self.latitude),
            ("longitude", &self.longitude),
            ("vaccines", &self.vaccines.join(" ")),
        ];
        let line = Line::from_fields(fields.map(|(name, value)| (name.to_owned(), value.clone())));
        CentreSetup::from_line(&line)
    }
}

#[derive(Serialize)]
struct VaccineChoice {
    code: String,
    name: Label,
    chosen: bool,
}

#[derive(Serialize)]
struct CentreView {
    /// `None` for a new centre.
    centre: Option<String>,
    closed: bool,
    entered: Entered,
    vaccines: Vec<VaccineChoice>,
    problem: Option<String>,
}

async fn centre_page(
    state: &AppState,
    console: &Console,
    centre: Option<(String, bool)>,
    entered: Entered,
    problem: Option<String>,
) -> HttpResponse {
    let published = match rules::policy(state, &console.member.region).await {
        Ok(published) => published,
        Err(refused) => return console.refused(state, CENTRES, &refused),
    };
    let every = entered.vaccines.is_empty();
    let vaccines = published
        .policy
        .vaccines
        .iter()
        .map(|vaccine| VaccineChoice {
            chosen: every || entered.vaccines.contains(&vaccine.code),
            code: vaccine.code.clone(),
            name: vaccine.name.clone(),
        })
        .collect();
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (centre, closed) = centre.map_or((None, false), |(id, closed)| (Some(id), closed));
    let view = CentreView {
        centre,
        closed,
        entered,
        vaccines,
        problem,
    };
    console.page(state, "admin_centre.html", status, view)
}

/// `GET /staff/admin/centres/new`.
pub async fn new_centre(state: web::Data<AppState>, console: Console) -> HttpResponse {
    if let Err(refused) = region_setup::centres(&state, &console.member).await {
        return console.refused(&state, "/staff", &refused);
    }
    centre_page(&state, &console, None, Entered::default(), None).await
}

/// `GET /staff/admin/centres/{centre}`.
pub async fn centre(state: web::Data<AppState>, id: web::Path<String>, console: Console) -> HttpResponse {
    match region_setup::centre(&state, &console.member, &id).await {
        Ok(centre) => {
            let entered = Entered::from_setup(&centre.setup);
            centre_page(
                &state,
                &console,
                Some((centre.setup.id, centre.closed)),
                entered,
                None,
            )
            .await
        }
        Err(refused) => console.refused(&state, CENTRES, &refused),
    }
}

/// `POST /staff/admin/centres/new` and `POST /staff/admin/centres/{centre}`: saves the form.
pub async fn save(
    state: web::Data<AppState>,
    id: Option<web::Path<String>>,
    form: web::Form<Vec<(String, String)>>,
    console: Console,
) -> HttpResponse {
    let (mut entered, csrf) = Entered::from_form(form.into_inner());
    if let Err(refused) = console.check_form(&csrf) {
        return console.refused(&state, CENTRES, &refused);
    }
    let existing = match &id {
        Some(id) => match region_setup::centre(&state, &console.member, id).await {
            Ok(centre) => {
                // The id is the address of the centre's page: it is never changed by the form.
                entered.id = centre.setup.id.clone();
                Some((centre.setup.id, centre.closed))
            }
            Err(refused) => return console.refused(&state, CENTRES, &refused),
        },
        None => None,
    };
    let setup = match entered.setup() {
        Ok(setup) => setup,
        Err(problem) => {
            let problem = state.templates.line_problem(console.language, &problem);
            return centre_page(&state, &console, existing, entered, Some(problem)).await;
        }
    };
    if existing.is_none()
        && region_setup::centre(&state, &console.member, &setup.id)
            .await
            .is_ok()
    {
        let said = state
            .templates
            .text(console.language, "console_errors", "centre_exists");
        let problem = said.unwrap_or_default().replace("{id}", &setup.id);
        return centre_page(&state, &console, existing, entered, Some(problem)).await;
    }
    match region_setup::save_centres(&state, &console.member, vec![(1, setup)], false).await {
        Ok(Ok(_)) => console.see_other(&format!("{CENTRES}?done=centre_saved")),
        Ok(Err(lines)) => {
            let problem = lines
                .0
                .iter()
                .map(|line| state.templates.line_problem(console.language, line))
                .collect::<Vec<_>>()
                .join(" ");
            centre_page(&state, &console, existing, entered, Some(problem)).await
        }
        Err(refused) => console.refused(&state, CENTRES, &refused),
    }
}

#[derive(Deserialize)]
pub struct ClosedForm {
    csrf: String,
    closed: bool,
}

/// `POST /staff/admin/centres/{centre}/closed`: closes or opens the centre.
pub async fn set_closed(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<ClosedForm>,
    console: Console,
) -> HttpResponse {
    let done = async {
        console.check_form(&form.csrf)?;
        region_setup::set_centre_closed(&state, &console.member, &id, form.closed).await
    }
    .await;
    match done {
        Ok(()) => {
            let done = if form.closed {
                "centre_closed"
            } else {
                "centre_opened"
            };
            console.see_other(&format!("{CENTRES}?done={done}"))
        }
        Err(refused) => console.refused(&state, CENTRES, &refused),
    }
}

/// `POST /staff/admin/centres/import`: checks a centres file, and imports it unless it is a
/// dry run or a line is wrong.
pub async fn import_centres(state: web::Data<AppState>, form: UploadForm, console: Console) -> HttpResponse {
    let upload = match Upload::checked(&console, form).await {
        Ok(upload) => upload,
        Err(refused) => return console.refused(&state, CENTRES, &refused),
    };
    let dry_run = upload.ticked("dry_run");
    let text = upload.text().unwrap_or_default();
    let saved = match read_centres(text) {
        Ok(setups) => region_setup::save_centres(&state, &console.member, setups, dry_run).await,
        Err(lines) => Ok(Err(lines)),
    };
    let page = Imported::new("centres", "/staff/admin/centres/import", CENTRES, text, dry_run);
    match saved {
        Ok(saved) => imported::page(&state, &console, page, saved, |row| {
            let vaccines = row
                .vaccines
                .as_ref()
                .map_or_else(String::new, |codes| codes.join(", "));
            vec![row.id.clone(), row.name.clone(), row.address.clone(), vaccines]
        }),
        Err(refused) => console.refused(&state, CENTRES, &refused),
    }
}

/// `POST /staff/admin/postcodes/import`: as for centres, with postcode areas' centroids.
pub async fn import_postcodes(
    state: web::Data<AppState>,
    form: UploadForm,
    console: Console,
) -> HttpResponse {
    let upload = match Upload::checked(&console, form).await {
        Ok(upload) => upload,
        Err(refused) => return console.refused(&state, CENTRES, &refused),
    };
    let dry_run = upload.ticked("dry_run");
    let text = upload.text().unwrap_or_default();
    let saved = match read_postcodes(text) {
        Ok(centroids) => region_setup::save_postcodes(&state, &console.member, centroids, dry_run).await,
        Err(lines) => Ok(Err(lines)),
    };
    let page = Imported::new(
        "postcodes",
        "/staff/admin/postcodes/import",
        CENTRES,
        text,
        dry_run,
    );
    match saved {
        Ok(saved) => imported::page(&state, &console, page, saved, |row| {
            vec![
                row.postcode.clone(),
                row.latitude.to_string(),
                row.longitude.to_string(),
            ]
        }),
        Err(refused) => console.refused(&state, CENTRES, &refused),
    }
}
