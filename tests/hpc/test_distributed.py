"""Launcher detection: python, torchrun and srun give the right ranks and master address."""

from workflow.hpc.launch import first_host, launch_info


def test_first_host_of_slurm_nodelists():
    assert first_host("frontier[00012-00015,00020]") == "frontier00012"
    assert first_host("nid001234") == "nid001234"
    assert first_host("node[3,5]") == "node3"


def test_plain_python_is_a_single_rank():
    info = launch_info({})
    assert (info.rank, info.world_size, info.launcher) == (0, 1, "python") and info.master_port > 0


def test_torchrun_variables_win():
    info = launch_info(
        {
            "RANK": "3",
            "WORLD_SIZE": "4",
            "LOCAL_RANK": "1",
            "MASTER_ADDR": "h",
            "MASTER_PORT": "1234",
            "SLURM_PROCID": "0",
            "SLURM_NTASKS": "8",
        }
    )
    assert (info.rank, info.world_size, info.local_rank, info.master_addr, info.launcher) == (3, 4, 1, "h", "torchrun")


def test_srun_takes_ranks_and_master_from_slurm():
    info = launch_info(
        {
            "SLURM_PROCID": "9",
            "SLURM_NTASKS": "16",
            "SLURM_LOCALID": "1",
            "SLURM_STEP_NODELIST": "frontier[00100-00101]",
        }
    )
    assert (info.rank, info.world_size, info.local_rank, info.master_addr, info.launcher) == (
        9,
        16,
        1,
        "frontier00100",
        "srun",
    )


def test_single_task_srun_is_plain_python():
    assert launch_info({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).launcher == "python"
