"""The search core: spec, space, problem, evaluator, study and storage (public names re-exported by `dse`)."""
