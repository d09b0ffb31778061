//! The dashboard's status page (`GET /dashboard/status`): requests per minute
//! by outcome, pending approvals, scrub hits, leak blocks and upstream
//! errors, read from the counters `/metrics` renders (never recomputed from
//! the audit table), drawn as server-rendered SVG: attributes and classes
//! only, so the Content-Security-Policy needs no inline style or script.
//!
//! Who may see it is what `/metrics` allows a session: any signed-in member.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::http::metrics_endpoint::pending_approvals;
use crate::metrics::{MinuteCounts, OUTCOMES, RATE_MINUTES, StatusCounters};
use crate::state::AppState;
use crate::web::pages::{self, Nav};
use crate::web::session::{member, nav};

/// Chart geometry (SVG user units).
const CHART_WIDTH: u32 = 600;
const CHART_HEIGHT: u32 = 160;
/// Height of the plot area (below it: the axis labels).
const PLOT_HEIGHT: u32 = 140;

/// One number on the page.
#[derive(Debug)]
struct Figure {
    id: &'static str,
    label: &'static str,
    value: u64,
}

/// One rectangle of the per-minute chart.
#[derive(Debug, PartialEq, Eq)]
struct Bar {
    class: &'static str,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    title: String,
}

/// One bar of the totals chart.
#[derive(Debug, PartialEq, Eq)]
struct Total {
    class: &'static str,
    label: &'static str,
    value: u64,
    y: u32,
    width: u32,
}

#[derive(Template)]
#[template(path = "dashboard/status.html")]
struct StatusPage {
    title: &'static str,
    nav: Option<Nav>,
    figures: Vec<Figure>,
    bars: Vec<Bar>,
    totals: Vec<Total>,
    peak: u64,
    minutes: usize,
    width: u32,
    height: u32,
    plot: u32,
}

/// The per-minute stacked bars: one column per minute, outcomes stacked
/// from the bottom, scaled so the busiest minute fills the plot.
fn minute_bars(window: &[MinuteCounts]) -> (Vec<Bar>, u64) {
    let peak = window
        .iter()
        .map(|m| m.counts.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let mut bars = Vec::new();
    if peak == 0 || window.is_empty() {
        return (bars, peak);
    }
    let step = CHART_WIDTH / window.len() as u32;
    let now = window.last().map_or(0, |m| m.minute);
    for (i, m) in window.iter().enumerate() {
        let mut top = PLOT_HEIGHT;
        for (o, &n) in m.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            // At least one unit high, so a single request is visible.
            let h = ((n * u64::from(PLOT_HEIGHT)) / peak).max(1) as u32;
            let h = h.min(top);
            top -= h;
            bars.push(Bar {
                class: OUTCOMES[o],
                x: i as u32 * step,
                y: top,
                width: step.saturating_sub(1).max(1),
                height: h,
                title: format!("{} min ago: {n} {}", now - m.minute, OUTCOMES[o]),
            });
        }
    }
    (bars, peak)
}

/// Longest bar of the totals chart (SVG user units; labels take the rest).
const TOTAL_BAR_MAX: u64 = 400;

/// Requests by outcome since start as horizontal bars (width out of [`TOTAL_BAR_MAX`]).
fn total_bars(c: &StatusCounters) -> Vec<Total> {
    let max = c.totals.iter().copied().max().unwrap_or(0).max(1);
    OUTCOMES
        .iter()
        .zip(c.totals)
        .enumerate()
        .map(|(i, (o, n))| Total {
            class: o,
            label: o,
            value: n,
            y: i as u32 * 26,
            width: ((n * TOTAL_BAR_MAX) / max) as u32,
        })
        .collect()
}

fn figures(c: &StatusCounters, pending: i64) -> Vec<Figure> {
    let per_minute_now = c
        .per_minute
        .last()
        .map_or(0, |m| m.counts.iter().sum::<u64>());
    vec![
        Figure {
            id: "requests-this-minute",
            label: "Requests this minute",
            value: per_minute_now,
        },
        Figure {
            id: "pending-approvals",
            label: "Pending approvals",
            value: u64::try_from(pending).unwrap_or(0),
        },
        Figure {
            id: "scrub-hits",
            label: "Responses scrubbed",
            value: c.scrubbed,
        },
        Figure {
            id: "leak-blocks",
            label: "Leak blocks",
            value: c.leak_blocks,
        },
        Figure {
            id: "upstream-errors",
            label: "Upstream errors",
            value: c.upstream_errors,
        },
        Figure {
            id: "total-ok",
            label: "OK since start",
            value: c.totals[0],
        },
        Figure {
            id: "total-refused",
            label: "Refused since start",
            value: c.totals[1],
        },
        Figure {
            id: "total-error",
            label: "Errors since start",
            value: c.totals[2],
        },
        Figure {
            id: "total-approval",
            label: "Approval outcomes since start",
            value: c.totals[3],
        },
    ]
}

/// `GET /dashboard/status`.
pub async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(m) = member(&state, &headers).await else {
        return Redirect::to("/login?next=/dashboard/status").into_response();
    };
    let counters = state.journal.metrics().status(state.clock.now_ms());
    let pending = pending_approvals(&state).await;
    let (bars, peak) = minute_bars(&counters.per_minute);
    pages::render(
        StatusCode::OK,
        &StatusPage {
            title: "Status",
            nav: Some(nav(&state, &m)),
            figures: figures(&counters, pending),
            totals: total_bars(&counters),
            bars,
            peak,
            minutes: RATE_MINUTES,
            width: CHART_WIDTH,
            height: CHART_HEIGHT,
            plot: PLOT_HEIGHT,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_by_outcome_and_the_busiest_minute_fills_the_plot() {
        let mut window: Vec<MinuteCounts> = (0..RATE_MINUTES as i64)
            .map(|i| MinuteCounts {
                minute: 1000 + i,
                counts: [0; 4],
            })
            .collect();
        window[RATE_MINUTES - 1].counts = [3, 1, 0, 0];
        window[0].counts = [1, 0, 0, 0];
        let (bars, peak) = minute_bars(&window);
        assert_eq!(peak, 4);
        assert_eq!(bars.len(), 3);
        let ok_now = &bars[1];
        assert_eq!(ok_now.class, "ok");
        assert_eq!(ok_now.height, 105);
        assert_eq!(ok_now.y, PLOT_HEIGHT - 105);
        let refused = &bars[2];
        assert_eq!((refused.y, refused.height), (0, 35), "stacked on top");
        assert_eq!(refused.x, (RATE_MINUTES as u32 - 1) * (CHART_WIDTH / 60));
        assert_eq!(bars[0].title, "59 min ago: 1 ok");
        assert!(minute_bars(&window[..0]).0.is_empty());
    }

    #[test]
    fn the_page_escapes_nothing_it_did_not_make_and_uses_no_inline_style() {
        let c = StatusCounters {
            totals: [5, 1, 2, 0],
            per_minute: vec![MinuteCounts {
                minute: 7,
                counts: [5, 1, 2, 0],
            }],
            scrubbed: 1,
            leak_blocks: 1,
            upstream_errors: 2,
        };
        let (bars, peak) = minute_bars(&c.per_minute);
        let html = StatusPage {
            title: "Status",
            nav: None,
            figures: figures(&c, 3),
            totals: total_bars(&c),
            bars,
            peak,
            minutes: RATE_MINUTES,
            width: CHART_WIDTH,
            height: CHART_HEIGHT,
            plot: PLOT_HEIGHT,
        }
        .render()
        .unwrap();
        assert!(!html.contains("style="), "{html}");
        assert!(html.contains("id=\"pending-approvals\">3<"), "{html}");
        assert!(html.contains("id=\"total-ok\">5<"), "{html}");
        assert!(html.contains("<rect class=\"bar ok\""), "{html}");
    }
}
