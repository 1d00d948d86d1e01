//! The engine's networking, from the host and from inside: a published port answers on
//! 127.0.0.1, containers reach each other by address and by name, `--network none` has only
//! lo, and nothing (veth, rule) is left when containers go or the engine restarts. Only
//! loopback and the tests' own bridges and namespaces are used.

use keel_tests::engine::{lines, ok, Engine};
use keel_tests::needs_root;
use keel_tests::text;
use std::io::{Read, Write};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// busybox httpd serving one page (busybox's wget segfaults on Debian's static build, so
/// clients use nc or the test's own socket).
const HTTPD: &str = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && httpd -f -p 80 -h /www";

fn get(port: u16) -> String {
    let mut stream = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream,
        Err(error) => return format!("connect: {error}"),
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn get_eventually(port: u16) -> String {
    for _ in 0..50 {
        let response = get(port);
        if response.contains("200 OK") {
            return response;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    get(port)
}

fn nat_rules() -> String {
    let output = std::process::Command::new("iptables")
        .args(["-w", "5", "-t", "nat", "-S"])
        .output();
    output.map(|o| text(&o.stdout)).unwrap_or_default()
}

fn host_veth(id: &str) -> std::path::PathBuf {
    std::path::Path::new("/sys/class/net").join(format!("vk{}", &id[..10]))
}

#[test]
fn a_published_port_answers_on_loopback_and_goes_with_the_container() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = ok(&engine.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let id = id.trim().to_owned();
    assert!(get_eventually(port).contains("hello-from-web"), "{}", get(port));
    let ps = ok(&engine.run(&["ps", "--format", "{{.Ports}}"]));
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    assert_eq!(
        ok(&engine.run(&["port", "web"])).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    // Another container may not take the same port: refused at create.
    let clash = engine.run(&["create", "-p", &publish, "busybox", "true"]);
    assert!(!clash.status.success());
    assert!(text(&clash.stderr).contains("port is already allocated"), "{clash:?}");
    assert!(host_veth(&id).exists());
    ok(&engine.run(&["rm", "-f", "web"]));
    assert!(!host_veth(&id).exists(), "the veth outlived its container");
    assert!(!nat_rules().contains(&format!("keel:{}", &id[..12])), "{}", nat_rules());
    assert!(get(port).starts_with("connect:"), "the port still answers");
}

#[test]
fn containers_reach_each_other_by_address_and_by_name_on_a_network() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    ok(&engine.run(&["network", "create", "appnet"]));
    let networks = ok(&engine.run(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]));
    assert!(networks.contains("appnet bridge"), "{networks}");
    ok(&engine.run(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "db",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let address = ok(&engine.run(&["inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", "db"]));
    let address = address.trim().to_owned();
    assert!(address.contains('.'), "{address}");
    let client = format!(
        "sleep 0.5; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} 80 | tail -1; \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 db 80 | tail -1"
    );
    let seen = ok(&engine.run(&["run", "--rm", "--network", "appnet", "busybox", "sh", "-c", &client]));
    assert_eq!(seen, "hello-from-db\nhello-from-db\n");
    let inspect = ok(&engine.run(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "appnet",
    ]));
    assert_eq!(inspect.trim(), "db");
    let busy = engine.run(&["network", "rm", "appnet"]);
    assert!(!busy.status.success(), "a network in use was removed: {busy:?}");
    ok(&engine.run(&["rm", "-f", "db"]));
    ok(&engine.run(&["network", "rm", "appnet"]));
    assert!(!ok(&engine.run(&["network", "ls"])).contains("appnet"));
}

#[test]
fn none_has_only_lo_and_host_shares_the_hosts_links() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let none = ok(&engine.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-up",
    ]));
    assert_eq!(none, "lo\nlo-up\n");
    let default = ok(&engine.run(&["run", "--rm", "busybox", "ls", "/sys/class/net"]));
    assert_eq!(default.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    ok(&engine.run(&["run", "-d", "--name", "first", "busybox", "sleep", "100"]));
    let joined = ok(&engine.run(&[
        "run",
        "--rm",
        "--network",
        "container:first",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]));
    let address = ok(&engine.run(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "first"]));
    assert!(
        joined.contains(&format!("inet {}/", address.trim())),
        "{joined} vs {address}"
    );
}

#[test]
fn engine_restarts_keep_published_ports_without_duplicate_rules() {
    if !needs_root() {
        return;
    }
    let mut engine = Engine::start();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = ok(&engine.run(&[
        "run",
        "-d",
        "--hostname",
        "kept",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let tag = format!("keel:{}", &id.trim()[..12]);
    assert!(get_eventually(port).contains("hello-from-kept"));
    for _ in 0..3 {
        engine.restart();
        assert!(
            get_eventually(port).contains("hello-from-kept"),
            "after a restart: {}",
            get(port)
        );
    }
    let rules = nat_rules();
    assert_eq!(rules.lines().filter(|r| r.contains(&tag)).count(), 1, "{rules}");
    let jumps = rules
        .lines()
        .filter(|r| r.starts_with("-A PREROUTING") && r.contains("-j KEEL"))
        .count();
    assert_eq!(jumps, 1, "{rules}");
    let bridge_rules = rules.lines().filter(|r| r.contains(&engine.bridge)).count();
    assert_eq!(bridge_rules, 2, "{rules}");
    assert_eq!(lines(&engine.run(&["ps", "-q"])).len(), 1);
}

#[test]
fn a_container_cannot_reach_the_hosts_loopback_services() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    // A service of the host's, on 127.0.0.1 only.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let gateway = engine.subnet.replace(".0/24", ".1");
    // The container sends 127.0.0.1 through its gateway instead of its own lo (its kernel
    // must allow that too: a container with every capability can make /proc/sys writable).
    let attack = format!(
        "mount -o remount,rw /proc/sys; echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet; \
         ip addr del 127.0.0.1/8 dev lo; ip route add 127.0.0.1/32 via {gateway} dev eth0; \
         echo hi | nc -w 2 127.0.0.1 {port}; echo done"
    );
    // Every capability: the guard under test is the host's, not the container's lack of them.
    let output = ok(&engine.run(&["run", "--rm", "--privileged", "busybox", "sh", "-c", &attack]));
    assert!(output.contains("done"), "{output}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        listener.accept().is_err(),
        "a container reached a service bound to the host's 127.0.0.1"
    );
}
