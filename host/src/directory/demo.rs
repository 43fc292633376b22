//! The demo tenant seeded into an empty database, so that `switchboard` with
//! no arguments has phones to register and numbers to call.

use super::provision::{
    create_device, create_employee, create_hunt_group, create_tenant, NewDevice, NewEmployee,
    NewHuntGroup, NewTenant, ProvisionError,
};
use super::{Directory, RingStrategy, Role};
use crate::store::Store;

/// The demo tenant's SIP domain.
pub const DEMO_DOMAIN: &str = "demo.switchboard.test";

/// What the demo seed created.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// Demo SIP domain.
    pub domain: String,
    /// (extension, name, password) of each account.
    pub accounts: Vec<(String, String, String)>,
}

/// Seeds the demo tenant when the database has no tenant; `None` otherwise.
pub async fn seed_demo(
    store: &Store,
    directory: &Directory,
) -> Result<Option<DemoInfo>, ProvisionError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
        .fetch_one(store.pool())
        .await?;
    if n > 0 {
        return Ok(None);
    }
    let created = create_tenant(
        store,
        &NewTenant {
            domain: DEMO_DOMAIN.into(),
            name: "Demo Ltd".into(),
            time_zone: Some("Europe/London".into()),
            trunk_uri: Some("sip:trunk@127.0.0.1:5090".into()),
            voicemail_uri: Some("sip:voicemail@127.0.0.1:5080".into()),
            hotdesk_first: None,
            hotdesk_last: None,
            busy_on_active_call: true,
        },
    )
    .await;
    match created {
        Ok(_) => {}
        // Another node starting on the same database seeded it first.
        Err(ProvisionError::Conflict { .. }) => {
            directory.reload().await?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    directory.reload().await?;
    let people = [
        (
            "2001",
            "Alice Admin",
            "alice-2001-pw",
            "1234",
            Role::Administrator,
        ),
        ("2002", "Bob", "bob-2002-pw", "2222", Role::User),
        ("2003", "Carol", "carol-2003-pw", "3333", Role::User),
        ("2004", "Dave", "dave-2004-pw", "4444", Role::User),
    ];
    let mut accounts = Vec::new();
    for (ext, name, password, pin, role) in people {
        let dir = directory
            .tenant_for(DEMO_DOMAIN)
            .ok_or_else(|| ProvisionError::NotFound("demo tenant".into()))?;
        create_employee(
            store,
            &dir,
            &NewEmployee {
                name: name.into(),
                login: Some(name.split(' ').next().unwrap_or(name).to_ascii_lowercase()),
                password: password.into(),
                position: None,
                role: Some(role),
                extension: Some(ext.into()),
                email: None,
                mobile: None,
                voicemail_pin: Some(pin.into()),
                department_id: None,
                forced_login: None,
                call_waiting: None,
            },
        )
        .await?;
        directory.reload().await?;
        accounts.push((ext.to_owned(), name.to_owned(), password.to_owned()));
    }
    let dir = directory
        .tenant_for(DEMO_DOMAIN)
        .ok_or_else(|| ProvisionError::NotFound("demo tenant".into()))?;
    for (ext, password) in [("5401", "desk-5401-pw"), ("5402", "desk-5402-pw")] {
        create_device(
            store,
            &dir,
            &NewDevice {
                username: ext.into(),
                password: password.into(),
                name: Some(format!("Hotdesk phone {ext}")),
                employee_id: None,
                digest_algorithms: Vec::new(),
            },
        )
        .await?;
        accounts.push((
            ext.to_owned(),
            "hotdesk device".to_owned(),
            password.to_owned(),
        ));
    }
    let member = |ext: &str| dir.employee_by_extension(ext).map(|e| e.id);
    let members: Vec<i64> = ["2002", "2003"].iter().filter_map(|e| member(e)).collect();
    create_hunt_group(
        store,
        &dir,
        &NewHuntGroup {
            extension: "2100".into(),
            name: "Sales".into(),
            strategy: Some(RingStrategy::RingAll),
            member_ring_secs: None,
            total_ring_secs: None,
            no_answer_applies_to: None,
            members,
        },
    )
    .await?;
    directory.reload().await?;
    Ok(Some(DemoInfo {
        domain: DEMO_DOMAIN.to_owned(),
        accounts,
    }))
}
