"""The stage lifecycle's validation order (textgan.stage.run_stage), on stand-in engines.

Both stages rely on it: each epoch's end runs the evaluators in order, and on the last one's
end the metrics are collected before the best checkpoint, early stopping and the epoch's log
line, all before the epoch-end checkpoint (tests/test_pretrain.py and tests/test_train.py run
the real stages through it).
"""

from __future__ import annotations

from types import SimpleNamespace

from ignite.engine import Engine, Events

from textgan.stage import StageParts, _attach_validation


def evaluator(name: str, value: float, calls: list[str]) -> Engine:
    engine = Engine(lambda engine, batch: None)

    @engine.on(Events.COMPLETED)  # as an ignite metric: attached when the evaluator is made
    def _metric(engine: Engine) -> None:
        calls.append(f"{name} metric")
        engine.state.metrics[name] = value

    return engine


def test_validation_collects_both_evaluators_before_the_best_checkpoint_and_early_stopping():
    calls: list[str] = []
    trainer = Engine(lambda engine, batch: None)
    first, last = evaluator("elbo", -3.0, calls), evaluator("d_acc", 0.5, calls)
    seen: dict[str, dict] = {}

    def recorder(name):
        def record(engine: Engine) -> None:
            calls.append(name)
            seen[name] = dict(parts.validation)
        return record

    parts = StageParts(
        stage="train", title="adversarial training", data=SimpleNamespace(), trainer=trainer,
        schedules={}, to_save={}, evaluators=(first, last), early_stopping=recorder("stop"),
        score_name="d_acc", progress_keys=[], progress_attributes=[], tb_keys=[],
        tb_attributes=[], optimizers={})
    _attach_validation(parts, [0, 1], recorder("best"), patience=1)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda: calls.append("checkpoint"))
    trainer.run([0], max_epochs=1)

    assert calls == ["elbo metric", "d_acc metric", "best", "stop", "checkpoint"]
    assert seen["best"] == seen["stop"] == {"elbo": -3.0, "d_acc": 0.5}
    assert parts.metrics() == {"elbo": -3.0, "d_acc": 0.5}


def test_without_patience_early_stopping_is_not_attached():
    calls: list[str] = []
    trainer = Engine(lambda engine, batch: None)
    only = evaluator("elbo", -3.0, calls)
    parts = StageParts(
        stage="pretrain", title="pretraining", data=SimpleNamespace(), trainer=trainer,
        schedules={}, to_save={}, evaluators=(only,),
        early_stopping=lambda engine: calls.append("stop"), score_name="validation ELBO",
        progress_keys=[], progress_attributes=[], tb_keys=[], tb_attributes=[], optimizers={})
    _attach_validation(parts, [0], None, patience=0)
    trainer.run([0], max_epochs=2)
    assert calls == ["elbo metric", "elbo metric"]
