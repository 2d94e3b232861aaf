//! Demo data: the Baden-Württemberg example policy, three vaccination centres and a week of
//! capacity from tomorrow. Loading is idempotent, so `serve --demo` can be run again and again.

use chrono::{Days, NaiveTime, Utc};
use drawbridge_domain::{plan, CapacityRequest, Policy};
use drawbridge_platform::{capacity, policies};
use sqlx::PgPool;

use drawbridge_platform::statements;

statements! {
    INSERT_POSTCODE_AREA =
        "INSERT INTO postcode_areas (postcode, latitude, longitude) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    REGION_TIMEZONE = "SELECT timezone FROM regions WHERE id = $1";
    INSERT_CENTRE =
        "INSERT INTO centres (id, region_id, name, address, postcode, latitude, longitude, vaccines)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";
    FUTURE_PAIRS_AT_CENTRE = "SELECT count(*) FROM slot_pairs WHERE centre_id = $1 AND first_slot_at > now()";
}

/// The example policy shipped in `deploy/policies/`.
pub const POLICY: &str = include_str!("../deploy/policies/bw.toml");

struct Centre {
    id: &'static str,
    name: &'static str,
    address: &'static str,
    postcode: &'static str,
    latitude: f64,
    longitude: f64,
    vaccines: &'static [&'static str],
}

const CENTRES: [Centre; 3] = [
    Centre {
        id: "stuttgart-liederhalle",
        name: "Impfzentrum Stuttgart Liederhalle",
        address: "Berliner Platz 1–3, 70174 Stuttgart",
        postcode: "70174",
        latitude: 48.7784,
        longitude: 9.1730,
        vaccines: &["biontech", "moderna"],
    },
    Centre {
        id: "karlsruhe-schwarzwaldhalle",
        name: "Impfzentrum Karlsruhe Schwarzwaldhalle",
        address: "Festplatz 9, 76137 Karlsruhe",
        postcode: "76137",
        latitude: 49.0040,
        longitude: 8.4037,
        vaccines: &["biontech", "astrazeneca"],
    },
    Centre {
        id: "mannheim-maimarkt",
        name: "Impfzentrum Mannheim Maimarkthalle",
        address: "Xaver-Fuhr-Straße 101, 68163 Mannheim",
        postcode: "68163",
        latitude: 49.4615,
        longitude: 8.5123,
        vaccines: &["moderna", "astrazeneca", "janssen"],
    },
];

/// Centroids of a few postcode areas people in the demo can live in.
const POSTCODES: [(&str, f64, f64); 8] = [
    ("70173", 48.7758, 9.1829),
    ("70174", 48.7800, 9.1700),
    ("76133", 49.0094, 8.4044),
    ("76137", 48.9990, 8.4050),
    ("68159", 49.4875, 8.4660),
    ("68163", 49.4600, 8.5100),
    ("69117", 49.4093, 8.6942),
    ("72070", 48.5216, 9.0576),
];

/// What the loader added (zero counts on a repeated run).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DemoSummary {
    pub region: String,
    pub policy_version: u32,
    pub centres: usize,
    pub slot_pairs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Policy(#[from] policies::PublishError),
    #[error(transparent)]
    Capacity(#[from] drawbridge_domain::CapacityError),
    #[error(transparent)]
    Store(#[from] capacity::CapacityStoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn load(pool: &PgPool) -> Result<DemoSummary, DemoError> {
    let mut tx = pool.begin().await?;
    let published = policies::publish(&mut tx, POLICY).await?;
    let mut summary = DemoSummary {
        region: published.region.clone(),
        policy_version: published.version,
        ..DemoSummary::default()
    };
    for (postcode, latitude, longitude) in POSTCODES {
        sqlx::query(INSERT_POSTCODE_AREA)
            .bind(postcode)
            .bind(latitude)
            .bind(longitude)
            .execute(&mut *tx)
            .await?;
    }
    let (timezone,): (String,) = sqlx::query_as(REGION_TIMEZONE)
        .bind(&published.region)
        .fetch_one(&mut *tx)
        .await?;
    for centre in &CENTRES {
        let created = sqlx::query(INSERT_CENTRE)
            .bind(centre.id)
            .bind(&published.region)
            .bind(centre.name)
            .bind(centre.address)
            .bind(centre.postcode)
            .bind(centre.latitude)
            .bind(centre.longitude)
            .bind(centre.vaccines)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        summary.centres += created as usize;
        let (upcoming,): (i64,) = sqlx::query_as(FUTURE_PAIRS_AT_CENTRE)
            .bind(centre.id)
            .fetch_one(&mut *tx)
            .await?;
        if upcoming == 0 {
            summary.slot_pairs += add_week_of_capacity(&mut tx, &published.policy, centre, &timezone).await?;
        }
    }
    tx.commit().await?;
    Ok(summary)
}

/// Mornings and afternoons for seven days from tomorrow, two people per 10-minute slot, with
/// the second dose at the earliest day the policy allows.
async fn add_week_of_capacity(
    connection: &mut sqlx::PgConnection,
    policy: &Policy,
    centre: &Centre,
    timezone: &str,
) -> Result<usize, DemoError> {
    let tomorrow = Utc::now().date_naive() + Days::new(1);
    let mut created = 0;
    for day in (0..7).map(|d| tomorrow + Days::new(d)) {
        for vaccine in centre.vaccines {
            let second_dose_after_days = policy
                .vaccine(vaccine)
                .and_then(|v| v.interval_days.as_ref())
                .map(|window| u32::from(window.min));
            for (from, until) in [(8, 12), (13, 18)] {
                let request = CapacityRequest {
                    vaccine: (*vaccine).to_owned(),
                    day,
                    from: NaiveTime::from_hms_opt(from, 0, 0).expect("valid time"),
                    until: NaiveTime::from_hms_opt(until, 0, 0).expect("valid time"),
                    slot_minutes: 10,
                    people_per_slot: 2,
                    second_dose_after_days,
                };
                let pairs = plan(policy, &request)?;
                capacity::insert_pairs(connection, centre.id, vaccine, timezone, &pairs, None).await?;
                created += pairs.len();
            }
        }
    }
    Ok(created)
}

/// Password of the demo staff accounts: for trying the staff APIs locally, never for a real
/// deployment (create real accounts with `drawbridge staff add`).
pub const DEMO_STAFF_PASSWORD: &str = "drawbridge-demo";

/// Demo staff accounts (an agent, centre staff for Stuttgart, a region admin, an analyst),
/// created unless their usernames exist; returns how many were created.
pub async fn add_staff(pool: &PgPool) -> Result<usize, drawbridge_platform::staff::StaffError> {
    use drawbridge_domain::Role;
    use drawbridge_platform::staff::{add, NewStaff, StaffError};
    let accounts = [
        ("agent.bw", Role::CallcentreAgent, None),
        ("door.stuttgart", Role::CentreStaff, Some(CENTRES[0].id)),
        ("admin.bw", Role::RegionAdmin, None),
        ("analyst.bw", Role::Analyst, None),
    ];
    let mut created = 0;
    let mut connection = pool.acquire().await?;
    for (username, role, centre) in accounts {
        let new = NewStaff {
            username,
            password: DEMO_STAFF_PASSWORD,
            role,
            region: "bw",
            centre,
            must_change_password: false,
        };
        match add(&mut connection, &new).await {
            Ok(_) => created += 1,
            Err(StaffError::Taken(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(created)
}
