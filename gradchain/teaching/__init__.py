"""The teaching applications, built on the library (never the other way round).

``race``        optimizers on 2-D test functions: tables, paths, and a learning-rate sweep.
``train_demo``  a small MLP on two spirals, trained with each optimizer.
``ladder``      the optimizer ladder: each named optimizer beside the one it builds on.
``explain``     a named optimizer as the chain it is, equation by equation.
``cli``         ``python -m gradchain``: the commands above from the shell.

Nothing is imported here: ``import gradchain`` loads only ``ladder`` (whose names it
exports), and each command loads only its own module.
"""

__all__: list[str] = []
