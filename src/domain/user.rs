//! Console users and what each role may do. The console and the SCF API ask the same question
//! (`Role::allows`) of the same table, so a role means one thing whichever door is used.

use super::rules::{FieldError, FieldErrors};
use std::fmt;

/// What a user may do, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Everything, including users, every key and billing.
    Admin,
    /// Functions, invocations, events and namespaces, and their own API keys.
    Developer,
    /// Sees everything, changes nothing.
    ReadOnly,
}

/// A kind of change (or reading), as the console's routes and the API's actions ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Pages, lists, event queries: every role.
    Read,
    /// Creating, changing, deleting and invoking functions; terminating and re-running events;
    /// status trace; namespaces.
    Develop,
    /// Creating, disabling and deleting one's own API keys.
    OwnKeys,
    /// Users, other users' keys and billing.
    Administer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Developer, Role::ReadOnly];

    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Develop | Permission::OwnKeys => self <= Role::Developer,
            Permission::Administer => self == Role::Admin,
        }
    }

    /// The name the store, the forms and the audit log use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::ReadOnly => "read-only",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Developer => "Developer",
            Role::ReadOnly => "Read-only",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The lesser of two roles: a key made read-only acts as read-only whoever owns it.
    pub fn at_most(self, other: Role) -> Role {
        self.max(other)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused for its role, in the user's terms.
pub fn refusal(role: Role, permission: Permission) -> String {
    let what = match permission {
        Permission::Read => "read this",
        Permission::Develop => "change functions, invoke them or manage events and namespaces",
        Permission::OwnKeys => "manage API keys",
        Permission::Administer => "manage users, other users' API keys or billing",
    };
    format!("Your role ({}) may not {what}.", role.as_str())
}

pub const NAME_MAX_CHARS: usize = 32;
pub const PASSWORD_MIN_CHARS: usize = 10;
/// Hashing is deliberately slow and its input unbounded otherwise: a password is at most this.
pub const PASSWORD_MAX_BYTES: usize = 256;

/// A user name: 2-32 lower-case letters, digits, `.`, `_` and `-`, starting with a letter, so
/// it reads the same in a URL, the audit log and a shell.
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    let ok = (2..=NAME_MAX_CHARS).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "UserName",
            "InvalidParameterValue",
            format!(
                "A user name is 2-{NAME_MAX_CHARS} lower-case letters, digits, '.', '_' and '-', starting with a letter."
            ),
        ))
    }
}

pub fn validate_password(password: &str, field: &'static str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(FieldError::new(
            field,
            "InvalidParameterValue",
            format!("A password has at least {PASSWORD_MIN_CHARS} characters."),
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(FieldError::new(
            field,
            "InvalidParameterValue",
            format!("A password has at most {PASSWORD_MAX_BYTES} bytes."),
        ));
    }
    Ok(())
}

pub fn parse_role(text: &str) -> Result<Role, FieldError> {
    Role::parse(text).ok_or_else(|| {
        FieldError::new(
            "Role",
            "InvalidParameterValue",
            "Choose a role: admin, developer or read-only.",
        )
    })
}

/// The rules of a new user, all at once, in form order.
pub fn validate_new_user(name: &str, role: &str, password: &str) -> Result<Role, FieldErrors> {
    let mut errors = FieldErrors::default();
    if let Err(e) = validate_name(name) {
        errors.push(e);
    }
    let role = parse_role(role).map_err(|e| errors.push(e)).ok();
    if let Err(e) = validate_password(password, "Password") {
        errors.push(e);
    }
    match role {
        Some(role) if errors.is_empty() => Ok(role),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_allows_what_it_names_and_nothing_more() {
        use Permission::*;
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Developer, [true, true, true, false]),
            (Role::ReadOnly, [true, false, false, false]),
        ];
        for (role, expected) in table {
            let got = [Read, Develop, OwnKeys, Administer].map(|p| role.allows(p));
            assert_eq!(got, expected, "{role}");
        }
        assert_eq!(Role::Admin.at_most(Role::ReadOnly), Role::ReadOnly);
        assert_eq!(Role::ReadOnly.at_most(Role::Admin), Role::ReadOnly);
        assert_eq!(Role::Developer.at_most(Role::Developer), Role::Developer);
    }

    #[test]
    fn names_and_passwords_are_bounded() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("ops-team.2").is_ok());
        for bad in [
            "a",
            "Alice",
            "1abc",
            "al ice",
            "al/ice",
            &"a".repeat(33),
            "",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_password("short", "Password").is_err());
        assert!(validate_password("long enough!", "Password").is_ok());
        assert!(validate_password(&"x".repeat(257), "Password").is_err());
        let errors = validate_new_user("A", "root", "x").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["UserName", "Role", "Password"]);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
