//! `drawbridge-simulate`: the same as `drawbridge simulate`, in a binary that builds only the
//! domain and the simulations (for analysts' machines and batch jobs).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "drawbridge-simulate",
    version,
    about = "What-if scenarios and replays of draws"
)]
struct Cli {
    #[command(flatten)]
    args: drawbridge_simulations::cli::SimulateArgs,
}

fn main() -> anyhow::Result<()> {
    drawbridge_simulations::cli::run(Cli::parse().args)
}
