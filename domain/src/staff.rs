//! Who among the staff may do what, and where. Call-centre agents act for callers of their
//! region; centre staff run their one centre; region admins may do both anywhere in their
//! region; analysts only read.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A staff role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Registers callers and answers offers on their behalf.
    CallcentreAgent,
    /// Publishes capacity, reads the schedule and checks people in, at one centre.
    CentreStaff,
    /// Everything agents and centre staff may do, in the whole region.
    RegionAdmin,
    /// Reads draws and audits.
    Analyst,
}

impl Role {
    /// Every role, as stored.
    pub const ALL: [Role; 4] = [
        Role::CallcentreAgent,
        Role::CentreStaff,
        Role::RegionAdmin,
        Role::Analyst,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CallcentreAgent => "callcentre_agent",
            Role::CentreStaff => "centre_staff",
            Role::RegionAdmin => "region_admin",
            Role::Analyst => "analyst",
        }
    }

    /// The role with this stored name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// A logged-in staff member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    /// Their account.
    pub id: Uuid,
    /// Their login name.
    pub username: String,
    /// What they do.
    pub role: Role,
    /// The region they work for.
    pub region: String,
    /// Their centre; set for centre staff only.
    pub centre: Option<String>,
}

/// Why a staff member may not do something; the message says what they may do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffRefusal {
    /// Their role does not include this kind of action.
    #[error("your role ({role}) may not {action}")]
    Role {
        /// Their role's name.
        role: &'static str,
        /// What they tried, in words.
        action: &'static str,
    },
    /// Another region's registrant or centre.
    #[error("you work for region {own}; this belongs to region {other}")]
    Region {
        /// Their region.
        own: String,
        /// The region the subject belongs to.
        other: String,
    },
    /// Another centre.
    #[error("you work for centre {own}; this is centre {other}")]
    Centre {
        /// Their centre.
        own: String,
        /// The centre they tried to act for.
        other: String,
    },
}

impl StaffMember {
    /// May they act for a caller (register, look up, answer offers) in `region`?
    pub fn may_act_for_callers(&self, region: &str) -> Result<(), StaffRefusal> {
        self.role_in(&[Role::CallcentreAgent, Role::RegionAdmin], "act for callers")?;
        self.in_region(region)
    }

    /// May they run `centre` (capacity, schedule, check-in), which is in `region`?
    pub fn may_run_centre(&self, centre: &str, region: &str) -> Result<(), StaffRefusal> {
        self.role_in(&[Role::CentreStaff, Role::RegionAdmin], "run a centre")?;
        self.in_region(region)?;
        match &self.centre {
            Some(own) if own != centre => Err(StaffRefusal::Centre {
                own: own.clone(),
                other: centre.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// May they set up `region`: its centres, staff, waiting rooms and policy, and read its
    /// audit log?
    pub fn may_administer(&self, region: &str) -> Result<(), StaffRefusal> {
        self.role_in(&[Role::RegionAdmin], "set up a region")?;
        self.in_region(region)
    }

    fn role_in(&self, roles: &[Role], action: &'static str) -> Result<(), StaffRefusal> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(StaffRefusal::Role {
                role: self.role.as_str(),
                action,
            })
        }
    }

    fn in_region(&self, region: &str) -> Result<(), StaffRefusal> {
        if self.region == region {
            Ok(())
        } else {
            Err(StaffRefusal::Region {
                own: self.region.clone(),
                other: region.to_owned(),
            })
        }
    }
}

impl StaffMember {
    /// May they read the draws, manifests, audits and simulation reports of `region`? Analysts
    /// and region admins of the region may; what they read is pseudonymised or aggregated.
    pub fn may_analyse(&self, region: &str) -> Result<(), StaffRefusal> {
        self.role_in(&[Role::Analyst, Role::RegionAdmin], "read the analyses")?;
        self.in_region(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: Role, centre: Option<&str>) -> StaffMember {
        StaffMember {
            id: Uuid::nil(),
            username: "someone".into(),
            role,
            region: "bw".into(),
            centre: centre.map(str::to_owned),
        }
    }

    #[test]
    fn each_role_acts_only_within_its_region_and_centre() {
        let agent = member(Role::CallcentreAgent, None);
        assert!(agent.may_act_for_callers("bw").is_ok());
        assert!(matches!(
            agent.may_act_for_callers("by"),
            Err(StaffRefusal::Region { .. })
        ));
        assert!(matches!(
            agent.may_run_centre("stuttgart", "bw"),
            Err(StaffRefusal::Role { .. })
        ));

        let staff = member(Role::CentreStaff, Some("stuttgart"));
        assert!(staff.may_run_centre("stuttgart", "bw").is_ok());
        assert!(matches!(
            staff.may_run_centre("ulm", "bw"),
            Err(StaffRefusal::Centre { .. })
        ));
        assert!(matches!(
            staff.may_act_for_callers("bw"),
            Err(StaffRefusal::Role { .. })
        ));

        let admin = member(Role::RegionAdmin, None);
        assert!(admin.may_run_centre("ulm", "bw").is_ok());
        assert!(admin.may_act_for_callers("bw").is_ok());
        assert!(admin.may_run_centre("muenchen", "by").is_err());

        let analyst = member(Role::Analyst, None);
        assert!(analyst.may_act_for_callers("bw").is_err());
        assert!(analyst.may_run_centre("ulm", "bw").is_err());
        assert!(analyst.may_administer("bw").is_err());
        let admin = member(Role::RegionAdmin, None);
        assert!(admin.may_administer("bw").is_ok());
        assert!(matches!(
            admin.may_administer("by"),
            Err(StaffRefusal::Region { .. })
        ));
        assert!(member(Role::CentreStaff, Some("ulm"))
            .may_administer("bw")
            .is_err());
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn analysts_and_region_admins_analyse_their_own_region_only() {
        for role in [Role::Analyst, Role::RegionAdmin] {
            let member = member(role, None);
            assert!(member.may_analyse("bw").is_ok());
            assert!(matches!(
                member.may_analyse("by"),
                Err(StaffRefusal::Region { .. })
            ));
        }
        for (role, centre) in [
            (Role::CallcentreAgent, None),
            (Role::CentreStaff, Some("stuttgart")),
        ] {
            assert!(matches!(
                member(role, centre).may_analyse("bw"),
                Err(StaffRefusal::Role { .. })
            ));
        }
    }
}
