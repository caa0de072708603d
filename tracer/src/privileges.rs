//! The capabilities tracing needs, checked before touching the kernel so a
//! missing one is reported by name.

use crate::error::TraceError;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Checks that this process may load BPF tracing programs (CAP_BPF) and
/// open uprobe perf events (CAP_PERFMON), or has CAP_SYS_ADMIN, which
/// covers both on any kernel.
pub fn check() -> Result<(), TraceError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|source| TraceError::Io {
        context: "cannot read /proc/self/status".into(),
        source,
    })?;
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    missing(effective).map_or(Ok(()), |message| Err(TraceError::Privileges(message)))
}

/// The message for an effective capability set that cannot trace, or
/// `None` when it can.
fn missing(effective: u64) -> Option<String> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let lacking: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(format!(
        "missing capability {} (tracing needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): run as root",
        lacking.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_capabilities() {
        assert_eq!(missing(1 << CAP_SYS_ADMIN), None);
        assert_eq!(missing((1 << CAP_BPF) | (1 << CAP_PERFMON)), None);
        let none = missing(0).unwrap();
        assert!(
            none.starts_with("missing capability CAP_BPF and CAP_PERFMON "),
            "{none}"
        );
        let no_perfmon = missing(1 << CAP_BPF).unwrap();
        assert!(
            no_perfmon.starts_with("missing capability CAP_PERFMON "),
            "{no_perfmon}"
        );
    }
}
