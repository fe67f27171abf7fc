//! Giving up root once the capture is open (`--user`, like tcpdump's `-Z`): the packet socket
//! stays usable, everything after it runs as an unprivileged user with no capabilities (a
//! switch from uid 0 clears them all).

use nix::unistd::{self, Gid, Uid, User};
use std::ffi::CString;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("--user {0}: no such user (give a name from the passwd file, or UID[:GID])")]
    UnknownUser(String),
    #[error("--user {0}: switching users needs to be started as root")]
    NotRoot(String),
    #[error("--user {user}: {step} failed: {source}")]
    Switch {
        user: String,
        step: &'static str,
        #[source]
        source: nix::Error,
    },
}

/// Who to become.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    uid: Uid,
    gid: Gid,
    /// Set for a passwd user: its supplementary groups are taken from the group file.
    name: Option<CString>,
}

/// A passwd name, or `UID` / `UID:GID` for users without an entry (a container's arbitrary
/// uid). A bare UID keeps the group of the same number.
fn identity(spec: &str) -> Result<Identity, PrivilegeError> {
    let unknown = || PrivilegeError::UnknownUser(spec.to_owned());
    let numeric = |t: &str| t.parse::<u32>().ok();
    if let Some((uid, gid)) = spec.split_once(':') {
        let (Some(uid), Some(gid)) = (numeric(uid), numeric(gid)) else {
            return Err(unknown());
        };
        return Ok(Identity {
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            name: None,
        });
    }
    if let Some(id) = numeric(spec) {
        return Ok(match User::from_uid(Uid::from_raw(id)) {
            Ok(Some(user)) => Identity {
                uid: user.uid,
                gid: user.gid,
                name: CString::new(user.name).ok(),
            },
            _ => Identity {
                uid: Uid::from_raw(id),
                gid: Gid::from_raw(id),
                name: None,
            },
        });
    }
    let user = User::from_name(spec).ok().flatten().ok_or_else(unknown)?;
    Ok(Identity {
        uid: user.uid,
        gid: user.gid,
        name: CString::new(user.name).ok(),
    })
}

/// Become `spec` for the rest of the process: supplementary groups, then the group, then the
/// user (in that order: each later step needs the privilege the earlier ones use). Nothing to
/// do when already that user.
pub fn drop_to_user(spec: &str) -> Result<(), PrivilegeError> {
    let target = identity(spec)?;
    if unistd::geteuid() == target.uid && unistd::getegid() == target.gid {
        return Ok(());
    }
    if !unistd::geteuid().is_root() {
        return Err(PrivilegeError::NotRoot(spec.to_owned()));
    }
    let fail = |step| {
        move |source| PrivilegeError::Switch {
            user: spec.to_owned(),
            step,
            source,
        }
    };
    match &target.name {
        Some(name) => unistd::initgroups(name, target.gid).map_err(fail("initgroups"))?,
        None => unistd::setgroups(&[]).map_err(fail("setgroups"))?,
    }
    unistd::setgid(target.gid).map_err(fail("setgid"))?;
    unistd::setuid(target.uid).map_err(fail("setuid"))?;
    tracing::info!(
        uid = target.uid.as_raw(),
        gid = target.gid.as_raw(),
        "running as an unprivileged user from now on"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_understood() {
        let root = identity("root").unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert!(root.name.is_some());
        let numeric = identity("4242:4343").unwrap();
        assert_eq!((numeric.uid.as_raw(), numeric.gid.as_raw()), (4242, 4343));
        assert_eq!(numeric.name, None);
        // A uid without a passwd entry keeps the group of its own number.
        let bare = identity("4242").unwrap();
        assert_eq!((bare.uid.as_raw(), bare.gid.as_raw()), (4242, 4242));
    }

    #[test]
    fn an_unknown_user_is_named_in_the_error() {
        for bad in ["no-such-user-here", "12:x", ":5"] {
            let err = identity(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("--user {bad}:")), "{err}");
        }
    }

    #[test]
    fn becoming_who_we_are_is_nothing_to_do() {
        let uid = unistd::geteuid().as_raw();
        let gid = unistd::getegid().as_raw();
        drop_to_user(&format!("{uid}:{gid}")).unwrap();
        assert_eq!(unistd::geteuid().as_raw(), uid);
    }
}
