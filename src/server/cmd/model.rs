//! `MODEL.*`: the online models.

use super::{Command, Ctx, Spec};
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

/// The model as of the last commit: version, watermark, propensity metrics, segments.
/// Metrics not defined yet (AUC before both classes were seen) are null.
///
/// # Format
///
/// ```text
/// MODEL.INFO
///
/// *1\r\n$10\r\nMODEL.INFO\r\n
/// -> %11\r\n$7\r\nversion\r\n:12\r\n$12\r\nwatermark_ms\r\n:1767225600000\r\n
///    $8\r\nexamples\r\n:40\r\n$9\r\npositives\r\n:9\r\n$16\r\npending_examples\r\n:3\r\n
///    $11\r\nrolling_auc\r\n,0.81\r\n$8\r\nlog_loss\r\n,0.52\r\n
///    $16\r\nrolling_log_loss\r\n,0.5\r\n$15\r\nsegments_seeded\r\n#t\r\n
///    $8\r\nsegments\r\n*8\r\n:10\r\n ... $3\r\ndim\r\n:52\r\n     (RESP2: a flat array)
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
        ])
    }
}
