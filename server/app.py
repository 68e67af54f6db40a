"""Flower ServerApp: hands the grid and run config to `fedge.federation`."""

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedge import fast_arrays, object_pulls
from fedge.config import RunConfig
from fedge.federation import run_dir_for, serve

object_pulls.install()  # retry a missing object after 20 ms, not 1 s (see fedge.object_pulls)
fast_arrays.install()  # .npy headers cached per dtype and shape (see fedge.fast_arrays)
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = RunConfig.from_flower(context.run_config)
    serve(grid, cfg, run_dir_for(cfg, context.run_id))
