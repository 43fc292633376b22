//! Directory types. Constructors validate, so a value of these types is
//! always one the router can act on.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// Numbers that must never be assigned to a person, group or device: they
/// belong to emergency services somewhere our tenants operate.
pub const EMERGENCY_NUMBERS: &[&str] = &[
    "000", "08", "100", "101", "102", "103", "104", "110", "112", "118", "119", "911", "999",
];

/// An internal number: 2 to 8 digits, not an emergency number. Feature codes
/// (`*88`, `##20`) can never be extensions because they are not digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Extension(String);

impl Extension {
    /// Validates `s` as an extension; the error says why it is refused.
    pub fn parse(s: &str) -> Result<Extension, String> {
        if s.len() < 2 || s.len() > 8 {
            return Err(format!("`{s}` must be 2 to 8 digits"));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{s}` must be digits only (`*` and `#` codes are feature codes)"
            ));
        }
        if EMERGENCY_NUMBERS.contains(&s) {
            return Err(format!("`{s}` is an emergency number"));
        }
        Ok(Extension(s.to_owned()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as an integer (extensions are at most 8 digits).
    pub fn number(&self) -> u32 {
        self.0.parse().unwrap_or(0)
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Extension {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Extension::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` looks like an external number: international digits, 6 to 15
/// of them (E.164 without the `+`), e.g. `441234567890`.
pub fn is_international_number(s: &str) -> bool {
    (6..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0')
}

/// An organisation: its own SIP domain (also the digest realm) and directory.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Database id.
    pub id: i64,
    /// SIP domain; phones register as `ext@domain`.
    pub domain: String,
    /// Display name.
    pub name: String,
    /// IANA time zone, e.g. `Europe/London`.
    pub time_zone: String,
    /// Where calls to external numbers go (`sip:gw.example.net:5060`).
    pub trunk_uri: Option<String>,
    /// Where voicemail diverts go.
    pub voicemail_uri: Option<String>,
    /// Extensions of hotdesk device accounts.
    #[schema(schema_with = hotdesk_range_schema)]
    pub hotdesk_range: RangeInclusive<u32>,
    /// A second call to someone already on a call counts as busy.
    pub busy_on_active_call: bool,
    /// Digest algorithms the tenant's challenges offer, most preferred
    /// first (`MD5`, `SHA-256`); empty: the router's default.
    pub digest_algorithms: Vec<String>,
    /// Whose call history department heads see (seed 002).
    pub head_history_scope: HistoryScope,
    /// Whose call history users see (seed 002; never internal calls).
    pub user_history_scope: HistoryScope,
    /// The operator's overrides of the plugin limits for this tenant.
    pub plugin_limits: PluginLimits,
}

/// Plugin limits the platform operator set for one tenant; an absent one
/// is the operator's `[plugins]` default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PluginLimits {
    /// Longest one decision may run (ms), 1-100: a decision holds one of
    /// the router's threads while it runs.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub deadline_ms: Option<u32>,
    /// Memory cap of one plugin instance (MiB), 1 up to the operator's
    /// `[plugins] memory_ceiling_mib`.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub memory_mib: Option<u32>,
    /// Largest component the tenant may upload (KiB), 1-262144.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 262144)]
    pub upload_kib: Option<u32>,
}

/// Only a JSON object is a set of limits: serde's derive would also take a
/// list (`[null, null]`) for the struct's fields in order.
impl<'de> Deserialize<'de> for PluginLimits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            #[serde(default)]
            deadline_ms: Option<u32>,
            #[serde(default)]
            memory_mib: Option<u32>,
            #[serde(default)]
            upload_kib: Option<u32>,
        }
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = PluginLimits;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of deadline_ms, memory_mib and upload_kib")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<PluginLimits, A::Error> {
                let f = Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(PluginLimits {
                    deadline_ms: f.deadline_ms,
                    memory_mib: f.memory_mib,
                    upload_kib: f.upload_kib,
                })
            }
        }
        d.deserialize_map(Object)
    }
}

/// `{"start": first, "end": last}`, as serde writes a `RangeInclusive`.
fn hotdesk_range_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{schema::Type, ObjectBuilder};
    let number = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
    };
    ObjectBuilder::new()
        .property("start", number())
        .property("end", number())
        .required("start")
        .required("end")
        .description(Some("first and last extension of the hotdesk range"))
        .build()
}

/// How much call history a role sees (the tenant's role settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryScope {
    /// Calls of their own department.
    Department,
    /// Calls of the whole company.
    Company,
}

impl HistoryScope {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryScope::Department => "department",
            HistoryScope::Company => "company",
        }
    }

    /// Parses the stored form (anything unknown is the narrower scope).
    pub fn parse(s: &str) -> HistoryScope {
        if s == "company" {
            HistoryScope::Company
        } else {
            HistoryScope::Department
        }
    }
}

/// Role of an employee (seed 002's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the tenant.
    Administrator,
    /// History and statistics of their department or company.
    DepartmentHead,
    /// Own settings: forwarding to their mobile.
    User,
    /// Only their own external calls.
    RestrictedUser,
}

impl Role {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::DepartmentHead => "department_head",
            Role::User => "user",
            Role::RestrictedUser => "restricted_user",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "administrator" => Role::Administrator,
            "department_head" => Role::DepartmentHead,
            "user" => Role::User,
            "restricted_user" => Role::RestrictedUser,
            _ => return None,
        })
    }
}

/// A person with an extension.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Employee {
    /// Database id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Full name, shown as caller name.
    pub name: String,
    /// HTTP login.
    pub login: String,
    /// Internal number, also the SIP username of their own phones.
    pub extension: Extension,
    /// Role for the admin API.
    pub role: Role,
    /// Free text.
    pub position: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Personal mobile, international digits.
    pub mobile: Option<String>,
    /// Department (a hunt group id).
    pub department_id: Option<i64>,
    /// Digest HA1 (MD5) of `extension:domain:password`.
    #[serde(skip)]
    pub ha1_md5: String,
    /// Digest HA1 (SHA-256).
    #[serde(skip)]
    pub ha1_sha256: String,
    /// Voicemail PIN (hotdesk login); never serialized.
    #[serde(skip)]
    pub voicemail_pin: Option<String>,
    /// Forced login (seed 004): the idle timeout and status on no answer
    /// apply to them when they also have a PIN.
    pub forced_login: bool,
    /// Call waiting: a second call rings them while they are on a call.
    pub call_waiting: bool,
}

/// A SIP account a phone registers with, other than an employee's own.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Device {
    /// Database id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// SIP username (an extension: hotdesk accounts are in the hotdesk range).
    pub username: Extension,
    /// Label.
    pub name: String,
    /// Owner; `None` for a hotdesk account that belongs to nobody.
    pub employee_id: Option<i64>,
    /// Digest HA1 (MD5).
    #[serde(skip)]
    pub ha1_md5: String,
    /// Digest HA1 (SHA-256).
    #[serde(skip)]
    pub ha1_sha256: String,
    /// Digest algorithms this account's challenges offer, most preferred
    /// first; empty: the tenant's.
    pub digest_algorithms: Vec<String>,
}

/// How a hunt group offers a call to its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RingStrategy {
    /// Every available member at once.
    RingAll,
    /// Members in list order, each for the member ring time.
    Sequential,
    /// Like sequential, starting after the member who started the last call.
    Rotary,
    /// Members ordered by how long they have been idle, longest first.
    LongestIdle,
}

impl RingStrategy {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            RingStrategy::RingAll => "ring_all",
            RingStrategy::Sequential => "sequential",
            RingStrategy::Rotary => "rotary",
            RingStrategy::LongestIdle => "longest_idle",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<RingStrategy> {
        Some(match s {
            "ring_all" => RingStrategy::RingAll,
            "sequential" => RingStrategy::Sequential,
            "rotary" => RingStrategy::Rotary,
            "longest_idle" => RingStrategy::LongestIdle,
            _ => return None,
        })
    }
}

/// Which unanswered group calls change a member's status (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoAnswerAppliesTo {
    /// None do.
    None,
    /// Every call.
    AnyCalls,
    /// Only calls from outside the tenant.
    ExternalIncoming,
}

impl NoAnswerAppliesTo {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            NoAnswerAppliesTo::None => "none",
            NoAnswerAppliesTo::AnyCalls => "any_calls",
            NoAnswerAppliesTo::ExternalIncoming => "external_incoming",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<NoAnswerAppliesTo> {
        Some(match s {
            "none" => NoAnswerAppliesTo::None,
            "any_calls" => NoAnswerAppliesTo::AnyCalls,
            "external_incoming" => NoAnswerAppliesTo::ExternalIncoming,
            _ => return None,
        })
    }
}

/// A member of a hunt group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The employee.
    pub employee_id: i64,
    /// Disabled memberships (wrap-up) are skipped.
    pub enabled: bool,
}

/// A department / hunt group: an extension that rings its members.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HuntGroup {
    /// Database id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// The group's number.
    pub extension: Extension,
    /// Name.
    pub name: String,
    /// Ring strategy.
    pub strategy: RingStrategy,
    /// Seconds each member rings in sequential strategies.
    pub member_ring_secs: u32,
    /// Seconds before the group gives up.
    pub total_ring_secs: u32,
    /// Which unanswered calls change member status.
    pub no_answer_applies_to: NoAnswerAppliesTo,
    /// Members in ring order.
    pub members: Vec<Member>,
}

/// Digest HA1 = H(username:realm:password) in MD5 and SHA-256, hex.
pub fn ha1_pair(username: &str, realm: &str, password: &str) -> (String, String) {
    use md5::Digest as _;
    let input = format!("{username}:{realm}:{password}");
    let md5 = hex::encode(md5::Md5::digest(input.as_bytes()));
    let sha = hex::encode(sha2::Sha256::digest(input.as_bytes()));
    (md5, sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergency_numbers_and_feature_codes_are_not_extensions() {
        assert!(Extension::parse("112").is_err());
        assert!(Extension::parse("911").is_err());
        assert!(Extension::parse("999").is_err());
        assert!(Extension::parse("*88").is_err());
        assert!(Extension::parse("##20").is_err());
        assert!(Extension::parse("2001").is_ok());
    }

    #[test]
    fn international_numbers_are_digits_without_a_trunk_prefix() {
        assert!(is_international_number("441234567890"));
        assert!(!is_international_number("+441234567890"));
        assert!(!is_international_number("01234567890"));
        assert!(!is_international_number("2001"));
    }
}
