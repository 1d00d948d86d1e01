//! The image commands, as docker's: `pull`, `push`, `images`, `inspect`, `tag`, `rmi`, `import`,
//! `save`, `load`, and `busybox` (the embedded image, no network needed).

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::reference::Reference;
use crate::registry::RegistryOptions;
use crate::store::{default_root, Store};
use step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::cli::MoreCommands;

#[derive(Debug, Subcommand)]
pub enum More {
    #[command(flatten)]
    Step05(step05_overlay::More),
    /// Pull an image from a registry
    Pull {
        reference: String,
        #[command(flatten)]
        registry: RegistryFlags,
        /// Print only the image name
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Push an image to a registry (its layers, config and manifest, as the store has them)
    Push {
        reference: String,
        #[command(flatten)]
        registry: RegistryFlags,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// List images
    Images {
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Show an image's details as JSON
    Inspect {
        reference: String,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Give an image another name
    Tag {
        source: String,
        target: String,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Remove images (refused while a container snapshot uses one, unless --force)
    Rmi {
        #[arg(required = true)]
        references: Vec<String>,
        #[arg(short, long)]
        force: bool,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Make an image from a root filesystem tarball (plain or gzip; - for stdin)
    Import {
        tarball: String,
        reference: String,
        /// The image's default command, as in --change 'CMD ["sh"]' (repeat for arguments)
        #[arg(long = "cmd", value_name = "WORD")]
        cmd: Vec<String>,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Write images to a tar (docker save format and OCI layout in one)
    Save {
        #[arg(required = true)]
        references: Vec<String>,
        /// The file to write (default: standard output, when it is not a terminal)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Load images from a tar written by `docker save`, `save` or an OCI layout
    Load {
        /// The file to read (default: standard input)
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
    /// Put the embedded busybox image in the store (built from the host's static busybox)
    Busybox {
        #[arg(default_value = "busybox:latest")]
        reference: String,
        #[arg(long, value_name = "DIR", default_value_os_t = default_root())]
        root: PathBuf,
    },
}

/// How to reach a registry: the flags `pull` and `push` share.
#[derive(Debug, Args)]
pub struct RegistryFlags {
    /// Reach this registry (host[:port]) over plain HTTP (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
    /// Trust this CA certificate (PEM), e.g. a registry's self-signed one
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Credentials for the registry
    #[arg(long, value_name = "USER:PASSWORD")]
    user: Option<String>,
}

impl RegistryFlags {
    fn options(self) -> anyhow::Result<RegistryOptions> {
        let credentials = self
            .user
            .map(|u| {
                u.split_once(':')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .context("--user takes USER:PASSWORD")
            })
            .transpose()?;
        Ok(RegistryOptions {
            insecure: self.insecure,
            ca_cert: self.ca_cert,
            credentials,
        })
    }
}

impl MoreCommands for More {
    fn run(self) -> anyhow::Result<i32> {
        run(self)
    }
}

fn run(command: More) -> anyhow::Result<i32> {
    match command {
        More::Step05(more) => return more.run(),
        More::Pull {
            reference,
            registry,
            quiet,
            root,
        } => {
            let reference: Reference = reference.parse()?;
            crate::pull::pull(&Store::open(&root)?, &reference, registry.options()?, quiet)?;
            if quiet {
                println!("{}", reference.familiar());
            }
        }
        More::Push {
            reference,
            registry,
            root,
        } => {
            let reference: Reference = reference.parse()?;
            crate::push::push(&Store::open(&root)?, &reference, registry.options()?)?;
        }
        More::Images { root } => images(&Store::open(&root)?)?,
        More::Inspect { reference, root } => inspect(&Store::open(&root)?, &reference)?,
        More::Tag { source, target, root } => {
            let store = Store::open(&root)?;
            let (_, image) = store.resolve(&source)?;
            store.tag(&target.parse()?, &image.manifest_digest)?;
        }
        More::Rmi {
            references,
            force,
            root,
        } => {
            let store = Store::open(&root)?;
            for reference in references {
                store
                    .remove_image(&reference, force)?
                    .iter()
                    .for_each(|line| println!("{line}"));
            }
        }
        More::Import {
            tarball,
            reference,
            cmd,
            root,
        } => {
            let store = Store::open(&root)?;
            let reference: Reference = reference.parse()?;
            let cmd = (!cmd.is_empty()).then_some(cmd);
            let image = if tarball == "-" {
                crate::import::import(&store, std::io::stdin().lock(), &reference, cmd)?
            } else {
                let file = std::fs::File::open(&tarball).with_context(|| format!("opening {tarball}"))?;
                crate::import::import(&store, file, &reference, cmd)?
            };
            println!("{}", image.id());
        }
        More::Save {
            references,
            output,
            root,
        } => {
            let store = Store::open(&root)?;
            match output {
                Some(path) => save_to_file(&store, &references, &path)?,
                None if std::io::stdout().is_terminal() => {
                    anyhow::bail!("refusing to write a tar to a terminal: use -o FILE or redirect the output")
                }
                None => crate::archive::save(&store, &references, std::io::stdout().lock())?,
            }
        }
        More::Load { input, root } => {
            let store = Store::open(&root)?;
            let lines = match input {
                Some(path) => {
                    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                    crate::archive::load(&store, file)?
                }
                None => crate::archive::load(&store, std::io::stdin().lock())?,
            };
            lines.iter().for_each(|line| println!("{line}"));
        }
        More::Busybox { reference, root } => {
            let image = embedded_busybox(&Store::open(&root)?, &reference.parse()?)?;
            println!("{}", image.id());
        }
    }
    Ok(0)
}

/// Writes beside `path` and renames: an interrupted save leaves no truncated archive.
fn save_to_file(store: &Store, references: &[String], path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.partial",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = crate::archive::save(store, references, std::io::BufWriter::new(&file))
        .map_err(anyhow::Error::from)
        .and_then(|()| file.sync_all().context("syncing the archive"))
        .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn images(store: &Store) -> anyhow::Result<()> {
    println!(
        "{:<40} {:<12} {:<14} {:<22} SIZE",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
    );
    for (reference, image) in store.list()? {
        let repository = reference.familiar_name();
        let created = image.config.created().clone().unwrap_or_default();
        println!(
            "{:<40} {:<12} {:<14} {:<22} {}",
            repository,
            reference.tag.clone().unwrap_or_else(|| "<none>".into()),
            image.id().short(),
            created.chars().take(19).collect::<String>(),
            step05_overlay::step04_cgroups::size::human(image.size())
        );
    }
    Ok(())
}

fn inspect(store: &Store, reference: &str) -> anyhow::Result<()> {
    let (name, image) = store.resolve(reference)?;
    let config = serde_json::to_value(&image.config)?;
    let details = json!([{
        "Id": image.id().to_string(),
        "RepoTags": name.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
        "Manifest": image.manifest_digest.to_string(),
        "Created": config["created"],
        "Architecture": config["architecture"],
        "Os": config["os"],
        "Config": config["config"],
        "RootFS": config["rootfs"],
        "Size": image.size(),
        "Layers": image.layer_digests()?.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    }]);
    println!("{}", serde_json::to_string_pretty(&details)?);
    Ok(())
}

// ANCHOR: busybox
/// The embedded default image: step 03's busybox rootfs, as a tar, imported with `sh` as
/// its command. Its layer is the same bytes every time (deterministic tar headers), so it is
/// stored once however often it is built; the config carries the build time.
pub fn embedded_busybox(store: &Store, reference: &Reference) -> anyhow::Result<crate::store::images::Image> {
    let work = store.tmp_path("busybox");
    let rootfs = work.join("rootfs");
    step05_overlay::step04_cgroups::step03_mount_ns::busybox::build(&rootfs, None, false)?;
    let tarball = work.join("rootfs.tar");
    let result = (|| -> anyhow::Result<_> {
        let mut tar = tar::Builder::new(std::fs::File::create(&tarball)?);
        tar.follow_symlinks(false);
        tar.mode(tar::HeaderMode::Deterministic);
        tar.append_dir_all(".", &rootfs)?;
        tar.into_inner()?.sync_all()?;
        let file = std::fs::File::open(&tarball)?;
        Ok(crate::import::import(store, file, reference, Some(vec!["sh".into()]))?)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}
// ANCHOR_END: busybox
