//! Memory as the app sees it: the models it loads, and pictures of memory over time.
//!
//! | module | what it is |
//! |---|---|
//! | [`models`] | model lifecycle: budget-checked loads, one at a time, idle and pressure unloads, LRU |
//! | [`timeline`] | the data of a memory timeline: samples and marks |
//! | [`timeline_svg`] | the timeline drawn as an SVG chart |
//! | [`sparkline`] | the timeline as a terminal sparkline, or plain lines |

pub mod models;
pub mod sparkline;
pub mod timeline;
pub mod timeline_svg;
