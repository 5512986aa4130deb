"""Studies: sweeps over configurations (locally or on Ray) and reports over their runs.

    from sparserl.studies import spec_from_dict, run_sweep, build_report
    spec = spec_from_dict({"name": "demo", "preset": "quickstart",
                           "axes": {"sparsity": ["dense", "nm:2:4"], "seed": [0, 1, 2]}})
    run_sweep(spec)                                   # local processes; backend="ray" for a cluster
    build_report([spec.output_dir]).write(spec.output_dir / "report")
"""

from sparserl.studies.report import Report, build_report
from sparserl.studies.spec import RunPlan, SweepSpec, expand, load_spec, parse_axis, spec_from_dict
from sparserl.studies.sweep import RunOutcome, SweepResult, run_sweep

__all__ = ["Report", "RunOutcome", "RunPlan", "SweepResult", "SweepSpec", "build_report", "expand", "load_spec",
           "parse_axis", "run_sweep", "spec_from_dict"]
