//! A container's life as runc's commands drive it: `create` (set up, then wait on the start
//! FIFO), `start`, and `delete`; `run` is create and start in one, waiting unless detached.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::launch::{self, Detached};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::{Hook, Spec};
use step03_mount_ns::step02_pid_ns::step01_unshare::signals;
use step03_mount_ns::step02_pid_ns::step01_unshare::stage::{Stage, StageError, StageOrder};
use step03_mount_ns::step02_pid_ns::step01_unshare::start_gate::{self, StartGate};

use super::cli::{Context, CreateArgs};
use super::state::{now_rfc3339, process_start, write_atomically, Record, StateDir, Status};
use super::terminal::Terminal;
use super::{bundle, hooks, RuntimeError};

// ANCHOR: create
pub fn create(context: &Context, args: &CreateArgs) -> Result<(), RuntimeError> {
    bundle::check_id(&args.id)?;
    let (bundle, spec) = bundle::load(&args.bundle, &args.id, context.systemd_cgroup)?;
    context.dir.claim(&args.id)?;
    let created = (|| {
        let gate = StartGate::new(&context.dir.fifo(&args.id))?;
        let stages = stages(context, args, &bundle, &spec)?;
        let detached = Detached {
            gate: Some(&gate),
            preserve_fds: args.preserve_fds,
        };
        let pid = launch::create(&spec, stages, &detached)?;
        write_pid_file(args.pid_file.as_deref(), pid)
    })();
    if created.is_err() {
        let _ = context.dir.remove(&args.id);
    }
    created
}
// ANCHOR_END: create

/// Step 04's stages for the spec, and what a runtime adds: the terminal, the state record,
/// the hooks that run before the container's process does.
fn stages(
    context: &Context,
    args: &CreateArgs,
    bundle: &Path,
    spec: &Spec,
) -> Result<Vec<Box<dyn Stage>>, RuntimeError> {
    let mut stages = crate::stages(spec)?;
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    match (terminal, &args.console_socket) {
        (true, Some(socket)) => stages.push(Box::new(Terminal::connect(socket)?)),
        (true, None) => {
            return Err(RuntimeError::Usage(
                "process.terminal is true: give --console-socket PATH to receive the pty master".into(),
            ))
        }
        // runc refuses a console socket without a terminal; containerd never sends one.
        (false, _) => {}
    }
    let record = Record {
        id: args.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.to_owned(),
        rootfs: spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_default(),
        created: now_rfc3339(),
        config: spec.clone(),
    };
    stages.push(Box::new(RecordStage {
        dir: StateDir::new(&context.dir.root),
        record,
    }));
    Ok(stages)
}

/// Writes the state record once the container's process exists (the pid is known only
/// then), and runs the `prestart` and `createRuntime` hooks, which need that state.
struct RecordStage {
    dir: StateDir,
    record: Record,
}

/// After the cgroup (120): hooks see the container in its cgroup, and nothing has run yet.
const RECORD_ORDER: StageOrder = StageOrder(130);

impl Stage for RecordStage {
    fn name(&self) -> &'static str {
        "state"
    }

    fn order(&self) -> StageOrder {
        RECORD_ORDER
    }

    fn in_parent(&self, child: Pid) -> Result<(), StageError> {
        let mut record = self.record.clone();
        record.pid = child.as_raw();
        record.pid_start = process_start(record.pid).map_or(0, |(start, _)| start);
        let error = |e: RuntimeError| StageError::new("state", e.to_string());
        self.dir.save(&record).map_err(error)?;
        let hooks = self.record.config.hooks().as_ref();
        #[allow(deprecated)] // prestart is deprecated in the spec, still what CNI setups use
        let prestart = hooks.and_then(|h| h.prestart().clone()).unwrap_or_default();
        let create_runtime = hooks.and_then(|h| h.create_runtime().clone()).unwrap_or_default();
        let state = state_json(&record, &self.dir, Status::Created);
        hooks::run_all(&prestart, &state).map_err(error)?;
        hooks::run_all(&create_runtime, &state).map_err(error)
    }
}

fn state_json(record: &Record, dir: &StateDir, status: Status) -> Vec<u8> {
    let mut output = record.output(dir);
    output.status = status;
    output.pid = record.pid;
    serde_json::to_vec(&output).unwrap_or_default()
}

/// runc's pid file: the number and nothing else (containerd parses it with Atoi), written
/// atomically so nobody reads half of it.
pub(super) fn write_pid_file(path: Option<&Path>, pid: Pid) -> Result<(), RuntimeError> {
    match path {
        Some(path) => write_atomically(path, pid.as_raw().to_string().as_bytes()),
        None => Ok(()),
    }
}

// ANCHOR: start
pub fn start(context: &Context, id: &str) -> Result<(), RuntimeError> {
    let record = context.dir.load(id)?;
    match record.status(&context.dir) {
        Status::Created => {}
        status => {
            return Err(RuntimeError::WrongStatus {
                action: "start",
                id: id.to_owned(),
                status,
                hint: " (only a created container can be started)",
            })
        }
    }
    start_gate::open(&context.dir.fifo(id), || record.alive())?;
    let poststart = hook_list(&record.config, |h| h.poststart().clone());
    if let Err(error) = hooks::run_all(&poststart, &state_json(&record, &context.dir, Status::Running)) {
        eprintln!("warning: {error}");
    }
    Ok(())
}
// ANCHOR_END: start

fn hook_list(
    spec: &Spec,
    pick: impl Fn(&step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::Hooks) -> Option<Vec<Hook>>,
) -> Vec<Hook> {
    spec.hooks().as_ref().and_then(pick).unwrap_or_default()
}

/// runc's `run`: with `--detach`, create and start; otherwise the container runs in the
/// foreground, this process supervises it (signals forwarded) and exits with its status.
pub fn run(context: &Context, args: &CreateArgs, detach: bool) -> Result<i32, RuntimeError> {
    if detach {
        create(context, args)?;
        start(context, &args.id)?;
        return Ok(0);
    }
    bundle::check_id(&args.id)?;
    let (bundle, spec) = bundle::load(&args.bundle, &args.id, context.systemd_cgroup)?;
    context.dir.claim(&args.id)?;
    let result = stages(context, args, &bundle, &spec).and_then(|stages| Ok(launch::run(&spec, stages)?));
    let record = context.dir.load(&args.id).ok();
    let _ = context.dir.remove(&args.id);
    let exit = result?;
    if let Some(record) = record {
        let poststop = hook_list(&record.config, |h| h.poststop().clone());
        let _ = hooks::run_all(&poststop, &state_json(&record, &context.dir, Status::Stopped));
    }
    Ok(signals::exit_code(exit.status))
}

// ANCHOR: delete
pub fn delete(context: &Context, id: &str, force: bool) -> Result<(), RuntimeError> {
    let record = match context.dir.load(id) {
        // containerd's shim always runs `delete --force` when it cleans up, even for a
        // container that is long gone: that must succeed.
        Err(RuntimeError::NotFound(_)) if force => return Ok(()),
        other => other?,
    };
    let status = record.status(&context.dir);
    match status {
        Status::Stopped | Status::Created => {}
        _ if force => {}
        status => {
            return Err(RuntimeError::WrongStatus {
                action: "delete",
                id: id.to_owned(),
                status,
                hint: " (stop it first, or use --force)",
            })
        }
    }
    let cgroup = record.cgroup()?;
    if status != Status::Stopped {
        // A frozen process cannot die on v1; thaw first, then kill everything in the cgroup.
        let _ = cgroup.thaw();
        let _ = kill(Pid::from_raw(record.pid), Signal::SIGKILL);
        record.wait_until_ended();
    }
    // Whatever is left in the cgroup (processes of `exec`, orphans) is killed with it.
    cgroup.destroy()?;
    let poststop = hook_list(&record.config, |h| h.poststop().clone());
    if let Err(error) = hooks::run_all(&poststop, &state_json(&record, &context.dir, Status::Stopped)) {
        eprintln!("warning: {error}");
    }
    context.dir.remove(id)
}
// ANCHOR_END: delete
