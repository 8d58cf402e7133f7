//! `persona cluster status`: a cluster's agreed map and live members, read from NATS without
//! joining (feature `cluster`; see docs/cluster.md).

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// The map's epoch and partition count, the merged model's version, each member's
    /// address, liveness, partitions, and the model version and checksum it serves.
    Status {
        /// NATS servers of the cluster (comma-separated `nats://HOST:PORT`).
        #[arg(long, value_name = "URLS", value_delimiter = ',', required = true)]
        cluster: Vec<String>,
        /// The cluster's name [default: persona].
        #[arg(long, value_name = "NAME", default_value = "persona")]
        cluster_name: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(feature = "cluster")]
pub fn run(args: &Args) -> Result<()> {
    let Sub::Status {
        cluster,
        cluster_name,
        json,
    } = &args.command;
    let status = crate::cluster_status(cluster, cluster_name)?;
    if *json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let Some(map) = &status.map else {
        println!("cluster {cluster_name:?}: no map yet (no node has joined)");
        return Ok(());
    };
    println!(
        "cluster {:?} (id {}): epoch {}, {} partitions, {} members",
        map.name,
        map.cluster_id,
        status.epoch,
        map.partitions,
        map.members.len()
    );
    println!("merged model: version {}", status.model_version);
    println!(
        "{:<42} {:<22} {:>6} {:>10} {:>7} {:>16}",
        "node", "address", "live", "partitions", "model", "checksum"
    );
    let model = |id: &str| match status.models.get(id) {
        Some(m) => (m.version.to_string(), m.checksum.clone()),
        None => ("-".to_string(), "-".to_string()),
    };
    for m in &map.members {
        let live = status.live.iter().any(|l| l.id == m.id);
        let (version, checksum) = model(&m.id);
        println!(
            "{:<42} {:<22} {:>6} {:>10} {:>7} {:>16}",
            m.id,
            m.addr,
            if live { "yes" } else { "no" },
            map.partitions_of(&m.id).len(),
            version,
            checksum
        );
    }
    for l in status
        .live
        .iter()
        .filter(|l| !map.members.iter().any(|m| m.id == l.id))
    {
        let (version, checksum) = model(&l.id);
        println!(
            "{:<42} {:<22} {:>6} {:>10} {:>7} {:>16}",
            l.id, l.addr, "yes", "joining", version, checksum
        );
    }
    let unowned = (0..map.partitions)
        .filter(|&p| map.owner_of_partition(p).is_none())
        .count();
    if unowned > 0 {
        println!("{unowned} partitions have no owner: their slots are down");
    }
    Ok(())
}

#[cfg(not(feature = "cluster"))]
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!(
        "this persona was built without the `cluster` feature: build it with `cargo build \
         --release --features cluster` to run `persona cluster`"
    )
}
