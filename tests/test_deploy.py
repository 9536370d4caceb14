"""deploy/values.yaml: a Zero to JupyterHub config the chart accepts, sized for the course.

Helm checks a deployment's values against the chart's values schema after merging them onto the
chart's own defaults, and those defaults fill in every key the schema marks ``required`` along
the tree of named settings. So the file is checked here as Helm checks it: against the chart's
schema (deploy/z2jh-schema/, copied from ../shared/hub/) with just those ``required`` lists
lifted. Everything else is as strict as in Helm: no unknown key anywhere (the schema says
``additionalProperties: false`` throughout), types and enums, and the required fields inside
entries a deployment defines itself (an ``extraFiles`` entry needs its ``mountPath``).
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "deploy" / "values.yaml"
SCHEMA = ROOT / "deploy" / "z2jh-schema" / "z2jh-values.schema.yaml"
SHARED_HUB = ROOT.parent / "shared" / "hub"

# The course's memory budget per notebook (README, "What a run costs"): every notebook's kernel
# stays within it in full mode with the full archive (07 peaks at 3,617 MiB), so no user's pod may
# be limited below it.
NOTEBOOK_BUDGET_GIB = 3.75

GIB = 1024**3
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 134 kB schema


def _load(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_LOADER)


@lru_cache(maxsize=1)
def _schema() -> dict:
    return _load(SCHEMA)


def values() -> dict:
    """A fresh copy of deploy/values.yaml (tests may break it)."""
    return copy.deepcopy(_values())


@lru_cache(maxsize=1)
def _values() -> dict:
    return _load(VALUES)


def as_override_schema(node: dict) -> dict:
    """``node`` without ``required``, here and in every schema under it.

    Only schemas reached through ``properties`` lose it (the settings whose defaults the chart
    supplies); every other keyword is kept as it is.
    """
    out = {key: value for key, value in node.items() if key != "required"}
    if isinstance(node.get("properties"), dict):
        out["properties"] = {
            name: as_override_schema(sub) if isinstance(sub, dict) else sub
            for name, sub in node["properties"].items()
        }
    return out


@lru_cache(maxsize=1)
def _validator():
    schema = _schema()
    cls = jsonschema.validators.validator_for(schema)  # Draft 7, from the schema's $schema
    return cls(as_override_schema(schema))


def schema_errors(doc: dict) -> list[tuple[str, str]]:
    """(dotted path, message) of every way ``doc`` breaks the chart's schema."""
    found = [
        (".".join(str(p) for p in e.absolute_path) or "<top level>", e.message)
        for e in _validator().iter_errors(doc)
    ]
    return sorted(found)


def memory_bytes(spec) -> int:
    """A memory setting in bytes, read as KubeSpawner reads ``singleuser.memory``.

    Its ByteSpecification: a number is bytes; a string is a number and one suffix K, M, G or T, in
    powers of 1024. Kubernetes' own "Gi" or "Mi" is not accepted there, so not here.
    """
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return int(spec)
    if isinstance(spec, str) and spec[-1:] in units:
        try:
            return int(float(spec[:-1]) * units[spec[-1]])
        except ValueError:
            pass
    raise ValueError(
        f"{spec!r} is not a memory size KubeSpawner accepts: a number of bytes, "
        "or a number with K, M, G or T (powers of 1024), e.g. 2.5G"
    )


# --- the chart accepts the file -----------------------------------------------------------


def test_the_chart_schema_is_a_draft7_schema():
    schema = _schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


def test_values_pass_the_chart_schema():
    errors = schema_errors(values())
    assert not errors, "deploy/values.yaml breaks the chart's schema:\n" + "\n".join(
        f"  {path}: {message}" for path, message in errors
    )


def _rename(doc, dotted, new_name):
    *parents, last = dotted.split(".")
    parent = doc
    for key in parents:
        parent = parent[key]
    parent[new_name] = parent.pop(last)


def _set(doc, dotted, value):
    *parents, last = dotted.split(".")
    parent = doc
    for key in parents:
        parent = parent.setdefault(key, {})
    parent[last] = value


def _drop(doc, dotted):
    *parents, last = dotted.split(".")
    parent = doc
    for key in parents:
        parent = parent[key]
    del parent[last]


BROKEN = {
    # misspelled keys: Helm would refuse the install
    "misspelled singleuser.memory": (
        lambda d: _rename(d, "singleuser.memory", "memroy"),
        "singleuser",
    ),
    "misspelled cull.timeout": (lambda d: _rename(d, "cull.timeout", "timout"), "cull"),
    "top-level key in the wrong case": (
        lambda d: _rename(d, "singleuser", "singleUser"),
        "<top level>",
    ),
    # wrong types
    "CPU limit as a string": (
        lambda d: _set(d, "singleuser.cpu.limit", "2"),
        "singleuser.cpu.limit",
    ),
    "cull timeout with a unit": (lambda d: _set(d, "cull.timeout", "1h"), "cull.timeout"),
    "image tag as a number": (
        lambda d: _set(d, "singleuser.image.tag", 1.0),
        "singleuser.image.tag",
    ),
    # required inside an entry the deployment defines itself: not lifted
    "extraFiles entry without mountPath": (
        lambda d: _drop(d, "singleuser.extraFiles.tlcourse-cull-kernels.mountPath"),
        "singleuser.extraFiles.tlcourse-cull-kernels",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_copy_is_rejected_where_it_is_broken(name):
    breakit, where = BROKEN[name]
    doc = values()
    breakit(doc)
    errors = schema_errors(doc)
    assert where in [path for path, _ in errors], (
        f"{name}: expected an error at {where}, got {errors or 'none'}"
    )


# --- sized for the course -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [("2.5G", int(2.5 * GIB)), ("3584M", int(3.5 * GIB)), (1073741824, GIB), ("1T", 1024 * GIB)],
)
def test_memory_sizes_read_as_kubespawner_reads_them(spec, expected):
    assert memory_bytes(spec) == expected


@pytest.mark.parametrize("spec", ["3Gi", "2.5 GB", "lots", "G", True, None])
def test_memory_sizes_kubespawner_refuses_are_refused(spec):
    with pytest.raises(ValueError, match="not a memory size"):
        memory_bytes(spec)


def test_memory_limit_covers_the_course_budget_and_the_guarantee():
    memory = values()["singleuser"]["memory"]
    limit, guarantee = memory_bytes(memory["limit"]), memory_bytes(memory["guarantee"])
    assert limit >= NOTEBOOK_BUDGET_GIB * GIB, (
        f"singleuser.memory.limit {memory['limit']} ({limit / GIB:.2f} GiB) is below the "
        f"course's {NOTEBOOK_BUDGET_GIB} GiB per notebook: the biggest notebooks would be killed"
    )
    assert guarantee <= limit, "Kubernetes refuses a pod whose memory request exceeds its limit"


def test_cpu_guarantee_limit_and_thread_pools_agree():
    single = values()["singleuser"]
    cpu, env = single["cpu"], single["extraEnv"]
    assert 0 < cpu["guarantee"] <= cpu["limit"]
    cores = str(int(cpu["limit"]))
    threads = {
        k: env.get(k)
        for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
    }
    assert threads == dict.fromkeys(threads, cores), (
        f"thread pools {threads} should match singleuser.cpu.limit = {cpu['limit']}"
    )


def test_the_default_url_opens_notebook_01_where_nbgitpuller_puts_it():
    single = values()["singleuser"]
    url = single["defaultUrl"]
    assert url.startswith("/lab/tree/"), f"{url} does not open JupyterLab"
    folder, *inside = url.removeprefix("/lab/tree/").split("/")
    notebook = ROOT.joinpath(*inside)
    assert notebook.is_file() and notebook.name.startswith("01_"), (
        f"{url} should open notebook 01; {'/'.join(inside)} is not one in this repository"
    )
    hook = " ".join(single["lifecycleHooks"]["postStart"]["exec"]["command"])
    pulled = re.search(r"gitpuller\s+\S+\s+(\S+)\s+(\S+)", hook)
    assert pulled and pulled.groups() == ("main", folder), (
        f"the postStart hook should pull branch main into ~/{folder}: {hook}"
    )


@pytest.mark.skipif(not SHARED_HUB.is_dir(), reason="../shared/hub/ is not beside the checkout")
def test_the_schema_copy_is_the_shared_one_with_its_license():
    for name in ("z2jh-values.schema.yaml", "LICENSE-z2jh.txt"):
        assert (SCHEMA.parent / name).read_bytes() == (SHARED_HUB / name).read_bytes(), name


def test_each_students_build_folder_is_in_the_persistent_home():
    """Models and results outlive the server: TLCOURSE_BUILD lies on the home volume."""
    env = values()["singleuser"]["extraEnv"]
    build = env.get("TLCOURSE_BUILD", "")
    assert build.startswith("/home/jovyan/"), (
        f"TLCOURSE_BUILD={build!r}: without it under /home/jovyan, each student's saved models "
        "live in the container and are lost when the idle culler stops the server"
    )


def test_every_pod_mounts_the_exchange_where_nbgrader_looks():
    """One ReadWriteMany claim (deploy/exchange.yaml), mounted in every pod.

    nbgrader's config there names it: release, fetch, submit, collect and feedback go through it.
    """
    single = values()["singleuser"]
    volumes = {v["name"]: v for v in single["storage"]["extraVolumes"]}
    mounts = {m["name"]: m["mountPath"] for m in single["storage"]["extraVolumeMounts"]}
    claim = _load(ROOT / "deploy" / "exchange.yaml")
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every pod mounts it at once"
    (name,) = [
        name
        for name, volume in volumes.items()
        if volume.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
    ]
    config = single["extraFiles"]["tlcourse-nbgrader"]
    assert config["mountPath"] == "/etc/jupyter/nbgrader_config.py"
    settings = {}
    exec(config["stringData"], {"get_config": lambda: _Config(settings)})
    assert settings == {
        ("CourseDirectory", "course_id"): "tlcourse",
        ("Exchange", "root"): mounts[name],
    }


class _Config:
    """Records ``c.Section.key = value`` as nbgrader_config.py sets it."""

    def __init__(self, settings, section=None):
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_section", section)

    def __getattr__(self, section):
        return _Config(self._settings, section)

    def __setattr__(self, key, value):
        self._settings[(self._section, key)] = value
