"""`python -m fastnn warmup` compiles (or loads) the training kernels ahead of time."""

from fastnn.__main__ import main
from fastnn.warmup import warmup


def test_warmup_runs_every_layer_loss_and_the_named_optimizers(capsys):
    seconds = warmup(dtypes=("float64",), optimizers=["sgd", "adam"], verbose=True)
    assert seconds > 0
    assert "float64: ready in" in capsys.readouterr().out


def test_warmup_command(capsys):
    assert main(["warmup", "--dtype", "float64", "--optimizer", "sgd", "adam"]) == 0
    out = capsys.readouterr().out
    assert "fastnn kernels ready" in out and "float32" not in out



def test_warmup_command_rejects_an_unknown_optimizer(capsys):
    assert main(["warmup", "--optimizer", "adamm"]) == 2
    assert "--optimizer: invalid choice: 'adamm'" in capsys.readouterr().err
