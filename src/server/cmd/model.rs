//! `MODEL.*`: the online models.

use super::args::{integer, show, unix_time};
use super::{ArgDoc, ArgKind, Args, Command, CommandError, Ctx, Spec};
use crate::server::frame::Frame;

/// `MODEL.INFO`.
pub(crate) const INFO: Spec = Spec {
    name: "MODEL.INFO",
    arity: 1,
    flags: &["readonly", "fast"],
    key: 0,
    group: "model",
    since: "0.1.0",
    summary: "Returns the model version, its metrics and the segment sizes.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::ModelInfo(Info)),
    container: "",
};

/// `MODEL.VERSIONS`.
pub(crate) const VERSIONS: Spec = Spec {
    name: "MODEL.VERSIONS",
    arity: 1,
    flags: &["readonly"],
    key: 0,
    group: "model",
    since: "0.1.0",
    summary: "Lists the stored model snapshots, oldest first.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::ModelVersions(Versions)),
    container: "",
};

/// `MODEL.SNAPSHOT`.
pub(crate) const SNAPSHOT: Spec = Spec {
    name: "MODEL.SNAPSHOT",
    arity: 1,
    flags: &["write"],
    key: 0,
    group: "model",
    since: "0.1.0",
    summary: "Snapshots the model now; returns the snapshot's version.",
    args: &[],
    subcommands: &[],
    parse: |_| Ok(Command::ModelSnapshot(Snapshot)),
    container: "",
};

/// `MODEL.ROLLBACK`.
pub(crate) const ROLLBACK: Spec = Spec {
    name: "MODEL.ROLLBACK",
    arity: 2,
    flags: &["write"],
    key: 0,
    group: "model",
    since: "0.1.0",
    summary: "Rolls the learned parameters back to a snapshot; returns the new model version.",
    args: &[ArgDoc::new("version", ArgKind::Integer)],
    subcommands: &[],
    parse: |args| Rollback::parse(args).map(Command::ModelRollback),
    container: "",
};

/// `MODEL.ADVANCE`.
pub(crate) const ADVANCE: Spec = Spec {
    name: "MODEL.ADVANCE",
    arity: 2,
    flags: &["write"],
    key: 0,
    group: "model",
    since: "0.1.0",
    summary: "Says every event up to a time is in: moves the watermark there (refits, silences).",
    args: &[ArgDoc::new("ts", ArgKind::UnixTime)],
    subcommands: &[],
    parse: |args| Advance::parse(args).map(Command::ModelAdvance),
    container: "",
};

/// The model as of the last commit: version, watermark, propensity metrics, segments, and
/// `warnings` (today: events dated by the server's clock far after the store's data).
/// Metrics not defined yet (AUC before both classes were seen) are null.
///
/// # Format
///
/// ```text
/// MODEL.INFO
///
/// *1\r\n$10\r\nMODEL.INFO\r\n
/// -> %12\r\n$7\r\nversion\r\n:12\r\n$12\r\nwatermark_ms\r\n:1767225600000\r\n
///    $8\r\nexamples\r\n:40\r\n$9\r\npositives\r\n:9\r\n$16\r\npending_examples\r\n:3\r\n
///    $11\r\nrolling_auc\r\n,0.81\r\n$8\r\nlog_loss\r\n,0.52\r\n
///    $16\r\nrolling_log_loss\r\n,0.5\r\n$15\r\nsegments_seeded\r\n#t\r\n
///    $8\r\nsegments\r\n*8\r\n:10\r\n ... $3\r\ndim\r\n:52\r\n
///    $8\r\nwarnings\r\n*0\r\n                         (RESP2: a flat array)
/// ```
#[derive(Debug)]
pub(crate) struct Info;

impl Info {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Frame {
        let m = ctx.server.db.model_info();
        let metric = |v: Option<f64>| v.map_or(Frame::Null, Frame::Double);
        Frame::map_from([
            ("version", super::int(m.version)),
            ("watermark_ms", Frame::Integer(m.watermark_ms)),
            ("examples", super::int(m.examples)),
            ("positives", super::int(m.positives)),
            ("pending_examples", super::int(m.pending_examples)),
            ("rolling_auc", metric(m.rolling_auc)),
            ("log_loss", metric(m.log_loss)),
            ("rolling_log_loss", metric(m.rolling_log_loss)),
            ("segments_seeded", Frame::Boolean(m.segments_seeded)),
            (
                "segments",
                Frame::Array(m.segments.iter().map(|&n| super::int(n)).collect()),
            ),
            ("dim", super::int(u64::try_from(m.dim).unwrap_or(u64::MAX))),
            (
                "warnings",
                Frame::Array(
                    ctx.server
                        .clock_warning()
                        .into_iter()
                        .map(Frame::bulk)
                        .collect(),
                ),
            ),
        ])
    }
}

/// The stored model snapshots, oldest first, each with the metrics it had when taken.
///
/// # Format
///
/// ```text
/// MODEL.VERSIONS
///
/// *1\r\n$14\r\nMODEL.VERSIONS\r\n
/// -> *1\r\n%4\r\n$7\r\nversion\r\n:12\r\n$12\r\nwatermark_ms\r\n:1767225600000\r\n
///    $8\r\nexamples\r\n:40\r\n$11\r\nrolling_auc\r\n,0.81\r\n  (RESP2: each map a flat array)
/// ```
#[derive(Debug)]
pub(crate) struct Versions;

impl Versions {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let versions = ctx.server.db.model_versions()?;
        Ok(Frame::Array(
            versions
                .iter()
                .map(|m| {
                    Frame::map_from([
                        ("version", super::int(m.version)),
                        ("watermark_ms", Frame::Integer(m.watermark_ms)),
                        ("examples", super::int(m.examples)),
                        (
                            "rolling_auc",
                            m.rolling_auc.map_or(Frame::Null, Frame::Double),
                        ),
                    ])
                })
                .collect(),
        ))
    }
}

/// Snapshots the model now, through the writer (after the connection's earlier writes);
/// replies with the snapshot's version, which `MODEL.ROLLBACK` accepts.
///
/// # Format
///
/// ```text
/// MODEL.SNAPSHOT
///
/// *1\r\n$14\r\nMODEL.SNAPSHOT\r\n
/// -> :13\r\n
/// ```
#[derive(Debug)]
pub(crate) struct Snapshot;

impl Snapshot {
    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        Ok(super::int(ctx.server.db.take_model_snapshot()?))
    }
}

/// Rolls the learned parameters back to the snapshot taken at `version`, atomically through the
/// writer; replies with the new model version. Bookkeeping (watermark, segment sizes, metrics)
/// is kept.
///
/// # Format
///
/// ```text
/// MODEL.ROLLBACK version
///
/// *2\r\n$14\r\nMODEL.ROLLBACK\r\n$2\r\n13\r\n
/// -> :15\r\n
/// error: -ERR invalid argument version: ... (the message lists the kept snapshots)
/// ```
#[derive(Debug)]
pub(crate) struct Rollback {
    version: u64,
}

impl Rollback {
    fn parse(args: &mut Args) -> Result<Rollback, CommandError> {
        let raw = args.required()?;
        let version = integer(&raw)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| CommandError::Invalid {
                name: "version",
                value: show(&raw),
                allowed: "must be a snapshot version (see MODEL.VERSIONS)".into(),
            })?;
        Ok(Rollback { version })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        // On a cluster node the parameters are the cluster's merged model: rolling one node
        // back would send the difference to every node as if it had been learned.
        if ctx.server.config.cluster.is_some() {
            return Err(CommandError::Other(
                "MODEL.ROLLBACK is not available on a cluster node: its parameters are the \
                 cluster's merged model (docs/cluster.md, \"The global model\")"
                    .into(),
            ));
        }
        Ok(super::int(ctx.server.db.rollback_model(self.version)?))
    }
}

/// Says that every event up to `ts` (unix ms, or an RFC 3339 time) has been sent: the
/// watermark moves there as it would with an event at that time (`Db::advance_watermark`), so
/// the daily propensity refit runs if a day boundary is passed and `INACTIVE_DAYS` triggers fire
/// for the silences that came, without waiting for the next event. Replies with the model
/// version and the watermark; a `ts` at or before the watermark changes nothing.
///
/// # Format
///
/// ```text
/// MODEL.ADVANCE ts
///
/// *2\r\n$13\r\nMODEL.ADVANCE\r\n$13\r\n1767312000000\r\n
/// -> %2\r\n$7\r\nversion\r\n:16\r\n$12\r\nwatermark_ms\r\n:1767312000000\r\n
/// error: -ERR invalid ts 'soon': must be unix milliseconds or an RFC 3339 time
/// error: -ERR invalid argument time: ... is later than ..., the latest time an event is accepted at now ...
/// ```
#[derive(Debug)]
pub(crate) struct Advance {
    to_ms: i64,
}

impl Advance {
    fn parse(args: &mut Args) -> Result<Advance, CommandError> {
        let to_ms = unix_time("ts", &args.required()?)?;
        Ok(Advance { to_ms })
    }

    pub(crate) fn apply(self, ctx: &mut Ctx<'_>) -> Result<Frame, CommandError> {
        let db = &ctx.server.db;
        let version = db.advance_watermark(self.to_ms)?;
        Ok(Frame::map_from([
            ("version", super::int(version)),
            ("watermark_ms", Frame::Integer(db.model_info().watermark_ms)),
        ]))
    }
}
