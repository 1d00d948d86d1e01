//! runc's `--systemd-cgroup` cgroups paths. With it, `linux.cgroupsPath` names a systemd unit
//! rather than a directory: `slice:prefix:name` (docker: `system.slice:docker:<id>`, the
//! kubelet through containerd: `kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>`).
//! runc asks systemd over D-Bus to make a scope `prefix-name.scope` in that slice; systemd
//! puts it where [`to_cgroupfs`] says. keel makes that directory itself, so the container's
//! cgroup is where the kubelet, cAdvisor and systemd's tools look for it.

use super::CgroupError;

/// The slice a unit goes in when the path names none (runc's choice, for root).
pub const DEFAULT_SLICE: &str = "system.slice";

const SLICE: &str = ".slice";

/// The cgroup path (from the hierarchy roots, for [`super::open`]) of the unit that the
/// systemd-style `slice:prefix:name` names:
///
/// - the unit is `prefix-name.scope`, or `name` itself when it ends in `.slice`;
/// - it is placed in the slice's directory, `a-b.slice` being `/a.slice/a-b.slice`
///   ([`expand_slice`]); an empty slice is `system.slice`, `-.slice` the root.
///
/// So `system.slice:docker:abc` is `/system.slice/docker-abc.scope`. An empty prefix gives
/// `-name.scope`, as runc does. Anything else, or a `/` anywhere, is `BadSystemdPath`.
pub fn to_cgroupfs(cgroups_path: &str) -> Result<String, CgroupError> {
    let bad = |why: String| CgroupError::BadSystemdPath {
        path: cgroups_path.to_owned(),
        why,
    };
    let parts: Vec<&str> = cgroups_path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(bad(format!("it has {} part(s), not 3", parts.len())));
    };
    if name.is_empty() {
        return Err(bad("the name (the third part) is empty".to_owned()));
    }
    // A '/' would make the unit a path, and could climb out of the slice.
    for (what, part) in [("prefix", prefix), ("name", name)] {
        if part.contains(['/', '\0']) {
            return Err(bad(format!("the {what} {part:?} is not a unit name: it contains '/'")));
        }
    }
    let parent = expand(if slice.is_empty() { DEFAULT_SLICE } else { slice }).map_err(&bad)?;
    let unit = if name.ends_with(SLICE) {
        // Made a slice, not a scope: systemd would refuse a malformed slice name.
        expand(name).map_err(&bad)?;
        name.to_owned()
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(format!("{}/{unit}", parent.trim_end_matches('/')))
}

/// A slice's directory from the root: systemd nests a slice in the slice its name begins
/// with, so `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root, `/`.
pub fn expand_slice(slice: &str) -> Result<String, CgroupError> {
    expand(slice).map_err(|why| CgroupError::BadSystemdPath {
        path: slice.to_owned(),
        why,
    })
}

fn expand(slice: &str) -> Result<String, String> {
    let invalid = |why: &str| Err(format!("{slice:?} is not a slice name: {why}"));
    let Some(stem) = slice.strip_suffix(SLICE) else {
        return invalid("it must end in .slice");
    };
    if slice.contains(['/', '\0']) {
        return invalid("it contains '/' (a sub-slice is written with '-': a-b.slice)");
    }
    if stem == "-" {
        return Ok("/".to_owned());
    }
    let mut path = String::new();
    let mut name = String::new();
    for component in stem.split('-') {
        // "a--b", "-a", "a-" and "" name no slice.
        if component.is_empty() {
            return invalid("it has an empty part between '-'s");
        }
        if !name.is_empty() {
            name.push('-');
        }
        name.push_str(component);
        path.push('/');
        path.push_str(&name);
        path.push_str(SLICE);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::relative_path;

    fn path(cgroups_path: &str) -> String {
        to_cgroupfs(cgroups_path).unwrap_or_else(|e| panic!("{cgroups_path}: {e}"))
    }

    #[test]
    fn docker_and_kubernetes_paths_become_scopes_in_their_slices() {
        assert_eq!(path("system.slice:docker:abc"), "/system.slice/docker-abc.scope");
        assert_eq!(
            path("kubepods-besteffort-pod123.slice:cri-containerd:abc"),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-abc.scope"
        );
        assert_eq!(
            path("user-1000.slice:podman:abc"),
            "/user.slice/user-1000.slice/podman-abc.scope"
        );
    }

    #[test]
    fn an_empty_slice_is_system_slice_and_a_dash_is_the_root() {
        assert_eq!(path(":docker:abc"), "/system.slice/docker-abc.scope");
        assert_eq!(path("-.slice:docker:abc"), "/docker-abc.scope");
        // runc keeps the '-' when the prefix is empty.
        assert_eq!(path("system.slice::abc"), "/system.slice/-abc.scope");
    }

    #[test]
    fn a_name_ending_in_slice_is_a_slice_not_a_scope() {
        assert_eq!(path("system.slice:docker:sub.slice"), "/system.slice/sub.slice");
        assert_eq!(path("a-b.slice:ignored:a-b-c.slice"), "/a.slice/a-b.slice/a-b-c.slice");
    }

    #[test]
    fn slices_expand_into_their_parents() {
        assert_eq!(
            expand_slice("a-b-c.slice").ok().as_deref(),
            Some("/a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(expand_slice("system.slice").ok().as_deref(), Some("/system.slice"));
        assert_eq!(expand_slice("-.slice").ok().as_deref(), Some("/"));
        for bad in [
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a.scope",
            "system",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_result_is_a_path_open_accepts() {
        for p in ["system.slice:docker:abc", "-.slice:docker:abc", "a-b.slice::x.slice"] {
            assert!(relative_path(&path(p)).is_ok(), "{p}");
        }
    }

    #[test]
    fn malformed_paths_say_what_is_wrong_and_what_is_expected() {
        let cases = [
            ("abc", "1 part(s), not 3"),
            ("/keel/abc", "1 part(s), not 3"),
            ("system.slice:docker", "2 part(s)"),
            ("a.slice:b:c:d", "4 part(s)"),
            ("system.slice:docker:", "the name (the third part) is empty"),
            ("system:docker:abc", "must end in .slice"),
            ("a--b.slice:docker:abc", "empty part"),
            ("a/b.slice:docker:abc", "contains '/'"),
            (
                "system.slice:docker:../../etc",
                "the name \"../../etc\" is not a unit name",
            ),
            ("system.slice:../x:abc", "the prefix"),
            ("system.slice:docker:a--b.slice", "empty part"),
        ];
        for (input, why) in cases {
            let message = to_cgroupfs(input).expect_err(input).to_string();
            assert!(message.contains(why), "{input}: {message}");
            assert!(message.contains(&format!("{input:?}")), "{input}: {message}");
            assert!(message.contains("slice:prefix:name"), "{input}: {message}");
        }
    }
}
