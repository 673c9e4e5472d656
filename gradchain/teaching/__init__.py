"""The teaching applications, built on the library (never the other way round).

``race``        optimizers on 2-D test functions: tables, paths, and a learning-rate sweep.
``train_demo``  a small MLP on two spirals, trained with each optimizer.
``explain``     a named optimizer as the chain it is, equation by equation.
``cli``         ``python -m gradchain``: the commands above from the shell.

Nothing is imported here, and the library imports nothing from here: ``import gradchain``
loads no application; each command loads only its own module. The optimizer ladder they
show is the library's ``gradchain.ladder``.
"""

__all__: list[str] = []
