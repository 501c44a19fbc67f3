"""One KerasTuner search over a preset: the HyperModel, the budgeted oracle, the tuner, distribution.

A search lives in ``DIR/<search>/`` (KerasTuner's project: oracle state, one
folder per trial with its best-epoch weights), so running it again resumes it:
KerasTuner reloads the oracle, sends the trial a kill interrupted back to be run
again under the same id, and never repeats a finished one.

Wall-clock budget: the oracle refuses new trials once the search has used its
share (time already spent by an interrupted run is kept in the oracle's state),
and a callback stops the running trial's ``fit`` at the deadline (Keras still
validates that epoch, so the trial gets a score).

Distributed tuning is KerasTuner's own: with ``KERASTUNER_ORACLE_IP``,
``KERASTUNER_ORACLE_PORT`` and ``KERASTUNER_TUNER_ID`` set, the process whose
id contains ``chief`` serves the oracle over gRPC and the others run trials.
Search ``i`` (0: fused, then each modality alone) uses port ``PORT + i``.
"""

import contextlib
import os
import time
import warnings

import keras
import keras_tuner as kt
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import trial as trial_module

from mmkeras.tuning import space as space_module
from mmkeras.tuning import state_files
from mmkeras.tuning.trials import TRIALS_FILE, trial_rows, write_hparams_config, write_trials

state_files.install()  # a kill mid-write must not leave an empty oracle.json / tuner0.json behind

OBJECTIVE = "val_accuracy"
ALGORITHMS = ("hyperband", "bayesian")


class FitClock:
    """Seconds spent inside ``model.fit`` (the rest of a search's wall time is bookkeeping)."""

    def __init__(self):
        self.fit_seconds = 0.0
        self.trials = 0

    @contextlib.contextmanager
    def timing(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.fit_seconds += time.perf_counter() - start
            self.trials += 1


class StopAtDeadline(keras.callbacks.Callback):
    """Stops training after the batch during which the wall clock passed ``deadline`` (``time.time()``)."""

    def __init__(self, deadline):
        super().__init__()
        self.deadline = deadline

    def on_train_batch_end(self, batch, logs=None):
        if time.time() >= self.deadline:
            self.model.stop_training = True


class PresetHyperModel(kt.HyperModel):
    """A preset with the search space's overrides (:mod:`mmkeras.tuning.space`); ``fit`` is timed.

    Args:
        preset: dict. The starting preset.
        build: callable ``(preset, overrides) -> compiled model``.
        space: dict or None. Narrowing of the search space.
        default_augment: dict. Augmentation for modalities the preset does not augment.
        clock: :class:`FitClock`.
    """

    def __init__(self, preset, build, space=None, default_augment=None, clock=None, name=None):
        super().__init__(name=name)
        self.preset, self.make_model, self.space = preset, build, space
        self.default_augment, self.clock = default_augment or {}, clock or FitClock()

    def overrides(self, hp):
        return space_module.declare(hp, self.preset, self.space, self.default_augment)

    def build(self, hp):
        return self.make_model(self.preset, self.overrides(hp))

    def fit(self, hp, model, *args, **kwargs):
        with self.clock.timing():
            return model.fit(*args, **kwargs)


def _budget_oracle(base):
    """``base`` (a KerasTuner oracle class) that stops at a wall-clock budget or a trial count, and whose
    first trial is the preset's own configuration."""

    class BudgetOracle(base):
        def __init__(self, *args, budget_seconds=None, trial_limit=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.budget_seconds, self.trial_limit = budget_seconds, trial_limit
            self.spent_before, self.started = 0.0, time.monotonic()

        def spent(self):
            return self.spent_before + time.monotonic() - self.started

        def exhausted(self):
            over_time = self.budget_seconds is not None and self.spent() >= self.budget_seconds
            return over_time or (self.trial_limit is not None and len(self.trials) >= self.trial_limit)

        def _random_values(self):
            # The first trial is the preset itself (every dimension at its default): a short search
            # then never ends below the starting point only because its random draws were poor.
            if not self.trials and not self._retry_queue:
                return {hp.name: hp.default for hp in self.hyperparameters.space}
            return super()._random_values()

        def populate_space(self, trial_id):
            if self.exhausted():
                return {"status": trial_module.TrialStatus.STOPPED, "values": None}
            return super().populate_space(trial_id)

        def get_state(self):
            return {**super().get_state(), "mmkeras_budget_spent_s": self.spent()}

        def set_state(self, state):
            super().set_state(state)
            self.spent_before, self.started = float(state.get("mmkeras_budget_spent_s", 0.0)), time.monotonic()

    BudgetOracle.__name__ = f"Budget{base.__name__}"
    return BudgetOracle


HyperbandBudgetOracle = _budget_oracle(kt.oracles.HyperbandOracle)
BayesianBudgetOracle = _budget_oracle(kt.oracles.BayesianOptimizationOracle)


class _RecordingTuner:
    """Writes ``trials.csv`` from the oracle after every trial (mixed into a KerasTuner tuner)."""

    search_name, trials_path = "fused", None

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.trials_path and hasattr(self.oracle, "trials"):
            write_trials(self.trials_path, self.search_name, trial_rows(self.search_name, self.oracle))


class HyperbandTuner(_RecordingTuner, kt.Hyperband):
    def __init__(self, oracle, hypermodel, **kwargs):  # kt.Hyperband's own __init__ only makes its oracle
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


class BayesianTuner(_RecordingTuner, kt.Tuner):
    pass


def make_oracle(algorithm, max_epochs, seed, budget_seconds, trial_limit):
    """The oracle of ``algorithm`` (``"hyperband"``, ``"bayesian"``) with the budget and trial limit."""
    objective = kt.Objective(OBJECTIVE, "max")
    if algorithm == "hyperband":
        # Enough iterations that the budget (or trial_limit), not Hyperband, ends the search.
        return HyperbandBudgetOracle(objective, max_epochs=max_epochs, factor=3, hyperband_iterations=1000,
                                     seed=seed, budget_seconds=budget_seconds, trial_limit=trial_limit)
    if algorithm == "bayesian":
        return BayesianBudgetOracle(objective, max_trials=trial_limit or 100_000, seed=seed,
                                    budget_seconds=budget_seconds, trial_limit=trial_limit)
    raise ValueError(f"unknown search algorithm {algorithm!r}; expected one of {ALGORITHMS}")


@contextlib.contextmanager
def _port_offset(offset):
    """KerasTuner reads the oracle's port from the environment: search ``i`` uses ``PORT + i``."""
    if not dist_utils.has_chief_oracle():
        yield
        return
    base = os.environ["KERASTUNER_ORACLE_PORT"]
    try:
        port = int(base)
    except ValueError:
        raise ValueError(f"KERASTUNER_ORACLE_PORT must be a port number, got {base!r}") from None
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port + offset)
    try:
        yield
    finally:
        os.environ["KERASTUNER_ORACLE_PORT"] = base


def _serve(oracle):
    """KerasTuner's chief loop (``oracle_chief.start_server``), polling every 0.2 s, not 20 s, and
    stopping its gRPC server when every tuner has been told to stop and no trial is running.

    Upstream's loop and its exit rule: keras-team/keras-tuner#325 and #967; its long sleeps make a
    small search wait tens of seconds after its last trial, so the loop is reproduced here.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    if server.add_insecure_port(address) == 0:
        raise ValueError(f"the chief cannot serve the oracle on {address} (KERASTUNER_ORACLE_IP / _PORT): "
                         f"the port is taken or the address is not this machine's")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(0.2)
    finally:
        server.stop(grace=1).wait()


class Search:
    """One search (the fused preset or one modality alone) in ``DIR/<name>/``.

    Args:
        name: str. ``"fused"`` or a modality.
        index: int. Its position (the distributed port offset).
        hypermodel: :class:`PresetHyperModel`.
        out: str. The tune directory.
        algorithm, max_epochs, seed, budget_seconds, trial_limit: see :func:`mmkeras.tuning.tune`.
    """

    def __init__(self, name, index, hypermodel, out, algorithm="hyperband", max_epochs=10, seed=0,
                 budget_seconds=None, trial_limit=None):
        self.name, self.index, self.hypermodel, self.out = name, index, hypermodel, out
        self.log_dir = os.path.join(out, "logs", name)
        with _port_offset(index):
            oracle = make_oracle(algorithm, max_epochs, seed, budget_seconds, trial_limit)
            cls = HyperbandTuner if algorithm == "hyperband" else BayesianTuner
            self.tuner = cls(oracle, hypermodel, directory=out, project_name=name, overwrite=False)
        self.tuner.search_name, self.tuner.trials_path = name, os.path.join(out, TRIALS_FILE)
        self.budget_seconds, self.max_epochs = budget_seconds, max_epochs
        self.wall_seconds = self.spent_seconds = 0.0

    def run(self, train, validation, batch_size, patience, verbose=0):
        """Runs (or resumes) the search; in a distributed chief, serves the oracle until it ends."""
        start = time.perf_counter()
        with _port_offset(self.index):
            if dist_utils.is_chief_oracle():
                self.tuner.save()
                _serve(self.tuner.oracle)
                # The oracle saved before it popped the last trial (upstream saves only before serving,
                # keras-team/keras-tuner#977): keep the final state, or a resume reruns that trial.
                self.tuner.save()
            else:
                remaining = self.remaining_seconds()
                callbacks = [keras.callbacks.EarlyStopping(OBJECTIVE, patience=patience, mode="max"),
                             keras.callbacks.TensorBoard(self.log_dir, write_graph=False, profile_batch=0)]
                if remaining is not None:
                    callbacks.append(StopAtDeadline(time.time() + remaining))
                if not dist_utils.has_chief_oracle():
                    write_hparams_config(self.log_dir, self.tuner.oracle.get_space(), OBJECTIVE)
                self.tuner.search(train[0], train[1], validation_data=validation, batch_size=batch_size,
                                  epochs=self.max_epochs, callbacks=callbacks, verbose=verbose)
        if dist_utils.is_chief_oracle():
            write_hparams_config(self.log_dir, self.tuner.oracle.get_space(), OBJECTIVE)
        if hasattr(self.tuner.oracle, "trials"):
            write_trials(self.tuner.trials_path, self.name, trial_rows(self.name, self.tuner.oracle))
        self.wall_seconds = time.perf_counter() - start
        oracle = self.tuner.oracle
        self.spent_seconds = oracle.spent() if hasattr(oracle, "spent") else self.wall_seconds
        return self

    def remaining_seconds(self):
        if self.budget_seconds is None:
            return None
        oracle = self.tuner.oracle
        spent = oracle.spent() if hasattr(oracle, "spent") else 0.0
        return max(0.0, self.budget_seconds - spent)

    def best(self):
        """``(model with the best trial's best-epoch weights, its hyperparameters, its trial)``."""
        trials = self.tuner.oracle.get_best_trials(1)
        if not trials:
            raise ValueError(f"search {self.name!r} in {self.out!r} finished no trial (the budget ran out before "
                             f"the first one ended, or every trial failed: see {self.tuner.project_dir}); "
                             f"raise --budget-minutes")
        trial = trials[0]
        with warnings.catch_warnings():  # the checkpoint's optimizer slots: not needed to predict or export
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = self.tuner.load_model(trial)
        return model, trial.hyperparameters, trial

    def overrides(self, hyperparameters):
        return self.hypermodel.overrides(hyperparameters.copy())
