//! The host functions of `wit/host.wit`, scoped to the calling tenant and
//! plugin.

use std::time::Duration;

use chrono::{Datelike, TimeZone, Timelike};

use super::bindings::host_api::{self, Employee, HuntGroup, Level, LocalTime, Member, Presence};
use super::bindings::wit;
use super::state::Status;
use super::CallState;
use crate::directory::Entry;

impl wit::Host for CallState {}

fn to_wit(s: Status) -> host_api::Status {
    match s {
        Status::Available => host_api::Status::Available,
        Status::Dnd => host_api::Status::Dnd,
        Status::LoggedOut => host_api::Status::LoggedOut,
    }
}

impl host_api::Host for CallState {
    fn find_employee(&mut self, extension: String) -> Option<Employee> {
        let e = self.tenant.employee_by_extension(&extension)?;
        Some(Employee {
            extension: e.extension.to_string(),
            name: e.name.clone(),
            mobile: e.mobile.clone(),
            department: e
                .department_id
                .and_then(|d| self.tenant.groups.get(&d))
                .map(|g| g.extension.to_string()),
            has_pin: e.voicemail_pin.is_some(),
            forced_login: e.forced_login,
            role: match e.role {
                crate::directory::Role::Administrator => host_api::Role::Administrator,
                crate::directory::Role::DepartmentHead => host_api::Role::DepartmentHead,
                crate::directory::Role::User => host_api::Role::User,
                crate::directory::Role::RestrictedUser => host_api::Role::RestrictedUser,
            },
        })
    }

    fn groups_of(&mut self, extension: String) -> Vec<String> {
        let Some(e) = self.tenant.employee_by_extension(&extension) else {
            return Vec::new();
        };
        let mut v: Vec<String> = self
            .tenant
            .groups
            .values()
            .filter(|g| g.members.iter().any(|m| m.employee_id == e.id))
            .map(|g| g.extension.to_string())
            .collect();
        v.sort();
        v
    }

    fn find_device(&mut self, username: String) -> Option<host_api::Device> {
        let Some(Entry::Device(id)) = self.tenant.resolve(&username) else {
            return None;
        };
        let d = self.tenant.devices.get(&id)?;
        let owner = d
            .employee_id
            .and_then(|e| self.tenant.employees.get(&e))
            .map(|e| e.extension.to_string());
        Some(host_api::Device {
            username: d.username.to_string(),
            hotdesk: owner.is_none()
                && self
                    .tenant
                    .tenant
                    .hotdesk_range
                    .contains(&d.username.number()),
            owner,
        })
    }

    fn verify_pin(&mut self, extension: String, pin: String) -> Result<(), String> {
        self.shared
            .verify_pin(self.tenant.tenant.id, &extension, &pin)
    }

    fn devices_of(&mut self, extension: String) -> Vec<String> {
        let Some(e) = self.tenant.employee_by_extension(&extension) else {
            return Vec::new();
        };
        let mut v: Vec<String> = self
            .tenant
            .devices_of(e.id)
            .map(|d| d.username.to_string())
            .collect();
        v.sort();
        v
    }

    fn find_hunt_group(&mut self, extension: String) -> Option<HuntGroup> {
        let Some(Entry::Group(id)) = self.tenant.resolve(&extension) else {
            return None;
        };
        let g = self.tenant.groups.get(&id)?;
        Some(HuntGroup {
            extension: g.extension.to_string(),
            name: g.name.clone(),
            members: g
                .members
                .iter()
                .filter_map(|m| {
                    self.tenant.employees.get(&m.employee_id).map(|e| Member {
                        extension: e.extension.to_string(),
                        enabled: m.enabled,
                    })
                })
                .collect(),
            no_answer_applies_to: g.no_answer_applies_to.as_str().replace('_', "-"),
        })
    }

    fn presence_of(&mut self, extension: String) -> Presence {
        let (registered, active_calls, status) =
            self.shared.presence(self.tenant.tenant.id, &extension);
        Presence {
            registered,
            home_registered: self
                .shared
                .home_registered(self.tenant.tenant.id, &extension),
            hotdesk_device: self
                .shared
                .devices_bound_to(self.tenant.tenant.id, &extension)
                .into_iter()
                .next(),
            active_calls,
            status: to_wit(status),
        }
    }

    fn now_ms(&mut self) -> u64 {
        self.shared.now_ms().max(0) as u64
    }

    fn time_zone(&mut self) -> String {
        self.tenant.tenant.time_zone.clone()
    }

    fn local_time_now(&mut self) -> LocalTime {
        let tz: chrono_tz::Tz = self
            .tenant
            .tenant
            .time_zone
            .parse()
            .unwrap_or(chrono_tz::UTC);
        let t = tz
            .timestamp_millis_opt(self.shared.now_ms())
            .single()
            .unwrap_or_else(|| {
                tz.timestamp_millis_opt(0).single().unwrap_or_else(|| {
                    chrono::Utc
                        .timestamp_millis_opt(0)
                        .unwrap()
                        .with_timezone(&tz)
                })
            });
        LocalTime {
            year: t.year().max(0) as u32,
            month: t.month() as u8,
            day: t.day() as u8,
            hour: t.hour() as u8,
            minute: t.minute() as u8,
            second: t.second() as u8,
            weekday: t.weekday().number_from_monday() as u8,
        }
    }

    fn setting(&mut self, scope: String) -> Option<String> {
        self.shared
            .setting(self.tenant.tenant.id, &self.plugin, &scope)
    }

    fn kv_get(&mut self, key: String) -> Option<String> {
        self.shared
            .kv_get(self.tenant.tenant.id, &self.plugin, &key)
    }

    fn kv_set(&mut self, key: String, value: String) -> Result<(), String> {
        self.shared
            .kv_set(self.tenant.tenant.id, &self.plugin, &key, &value)
    }

    fn kv_delete(&mut self, key: String) {
        self.shared
            .kv_delete(self.tenant.tenant.id, &self.plugin, &key)
    }

    fn set_timer(&mut self, delay_ms: u64, payload: String) -> u64 {
        let payload: String = payload.chars().take(4096).collect();
        self.shared
            .set_timer(
                self.tenant.tenant.id,
                &self.plugin,
                Duration::from_millis(delay_ms),
                payload,
            )
            .max(0) as u64
    }

    fn cancel_timer(&mut self, id: u64) {
        self.shared.cancel_timer(id as i64)
    }

    fn set_status(
        &mut self,
        extension: String,
        status: host_api::Status,
        cause: String,
    ) -> Result<(), String> {
        let s = match status {
            host_api::Status::Available => Status::Available,
            host_api::Status::Dnd => Status::Dnd,
            host_api::Status::LoggedOut => Status::LoggedOut,
        };
        let cause = format!("{}: {cause}", self.plugin);
        self.shared
            .set_status(self.tenant.tenant.id, &extension, s, &cause)
    }

    fn set_membership(
        &mut self,
        group: String,
        extension: String,
        enabled: bool,
        cause: String,
    ) -> Result<(), String> {
        let cause = format!("{}: {cause}", self.plugin);
        self.shared
            .set_membership(self.tenant.tenant.id, &group, &extension, enabled, &cause)
    }

    fn bind_device(
        &mut self,
        device: String,
        extension: Option<String>,
        cause: String,
    ) -> Result<(), String> {
        let cause = format!("{}: {cause}", self.plugin);
        self.shared
            .bind_device(self.tenant.tenant.id, &device, extension.as_deref(), &cause)
    }

    fn device_binding(&mut self, device: String) -> Option<String> {
        self.shared.binding_of(self.tenant.tenant.id, &device)
    }

    fn annotate(&mut self, note: String) {
        if self.annotations.len() < 16 {
            self.annotations.push(note.chars().take(128).collect());
        }
    }

    fn log(&mut self, level: Level, message: String) {
        let message: String = message.chars().take(1024).collect();
        let (tenant, plugin, call) = (
            self.tenant.tenant.id,
            self.plugin.as_str(),
            self.call_id.as_str(),
        );
        match level {
            Level::Debug => tracing::debug!(tenant, plugin, call, "{message}"),
            Level::Info => tracing::info!(tenant, plugin, call, "{message}"),
            Level::Warn => tracing::warn!(tenant, plugin, call, "{message}"),
            Level::Error => tracing::error!(tenant, plugin, call, "{message}"),
        }
    }
}
