"""Dockerfile, compose.yaml and .dockerignore name only files, modules, settings and versions that exist.

There is no Docker engine where this suite runs, so the image is never built here and the stack
never started: these checks read the three files instead, and fail when what they name drifts from the
project: a moved script, a module renamed, a setting that is not one, a llama.cpp version or build
flag changed in the Makefile and not in the Dockerfile, a torch pin changed in pyproject.toml.
Each helper is first shown to catch a wrong input, so that no check passes for want of looking.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

from ragreel.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
DOCKERIGNORE = REPO / ".dockerignore"

# Variables that compose.yaml reads for itself (interpolation) and that are not ragreel settings.
COMPOSE_ONLY = {
    # the Prefect server's database: mapped to PREFECT_API_DATABASE_CONNECTION_URL, never passed on
    "RAGREEL_DATABASE_URL": "PREFECT_API_DATABASE_CONNECTION_URL",
}


# --- reading the files ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comment lines dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # Docker drops comment and empty lines, also inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        instruction, _, args = (pending + line).strip().partition(" ")
        instructions.append((instruction.upper(), args.strip()))
        pending = ""
    return instructions


def dockerfile_words(args: str) -> list[str]:
    """An instruction's arguments, from exec form (a JSON array) or shell form."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def dockerfile_arg(instructions: list[tuple[str, str]], name: str) -> str | None:
    for instruction, args in instructions:
        if instruction == "ARG" and args.partition("=")[0] == name:
            return shlex.split(args.partition("=")[2])[0]
    return None


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for instruction, args in instructions:
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args))
    return env


def makefile_variable(text: str, name: str) -> str | None:
    """The first value assigned to ``name`` (``=``, ``:=``, ``?=``), continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    match = re.search(rf"^(?:export\s+)?{re.escape(name)}\s*[:?]?=\s*(.*)$", joined, re.MULTILINE)
    return match.group(1).strip() if match else None


def makefile_exports(text: str) -> dict[str, str]:
    return dict(re.findall(r"^export\s+(\w+)\s*[:?]?=\s*(.*?)\s*$", text, re.MULTILINE))


@cache
def dockerignore_patterns() -> tuple[str, ...]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#"))


def ignored(path: str, patterns: tuple[str, ...] | None = None) -> bool:
    """Whether docker build leaves ``path`` (relative to the repository) out of the context.

    A pattern that matches a folder leaves out everything in it; ``**/`` matches any depth.
    (Exceptions with ``!`` are not used in .dockerignore and not understood here.)
    """
    patterns = dockerignore_patterns() if patterns is None else patterns
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        assert not pattern.startswith("!"), "exceptions are not understood by this check"
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/"):
                prefix_parts = prefix.split("/")
                if any(
                    fnmatch.fnmatchcase("/".join(prefix_parts[i:]), pattern[3:])
                    for i in range(len(prefix_parts))
                ):
                    return True
    return False


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, dict]:
    return compose()["services"]


def environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def command_text(value: str | list[str] | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(str(word) for word in value)


def commands(service: dict) -> str:
    """Everything a service runs: command, entrypoint and healthcheck test."""
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"):
        test = test[1:]
    return " ".join(command_text(part) for part in (service.get("entrypoint"), service.get("command"), test))


def built_services() -> dict[str, dict]:
    return {name: service for name, service in services().items() if "build" in service}


# --- what names must exist -----------------------------------------------------------------------

URL = re.compile(r"\w+://[^\s'\"]+")
RELATIVE_PATH = re.compile(r"(?<![\w./:$}-])((?:[\w.-]+/)+[\w.-]+)")


def repo_paths(text: str) -> list[str]:
    """Relative paths (``deployments/deploy.sh``, ``data/kb``) in a command; URLs and absolute paths not."""
    return RELATIVE_PATH.findall(URL.sub(" ", text))


def missing_repo_paths(text: str) -> list[str]:
    return [path for path in repo_paths(text) if not (REPO / path).exists()]


def python_modules(text: str) -> list[str]:
    """Modules run with ``python -m X``, in shell text or a joined exec-form command."""
    return re.findall(r"\bpython(?:3(?:\.\d+)?)?\s+-m\s+([\w.]+)", text)


def python_imports(text: str) -> list[tuple[str, str | None]]:
    """(module, name) imported by code in ``python -c '...'``: ``from M import N`` and ``import M``."""
    found = [
        (module, name.strip())
        for module, names in re.findall(r"\bfrom\s+([\w.]+)\s+import\s+([\w, ]+)", text)
        for name in names.split(",")
    ]
    found += [(module, None) for module in re.findall(r"(?:^|[;'\"]|-c\s)\s*import\s+([\w.]+)", text)]
    return found


def runnable_module(name: str) -> bool:
    """Whether ``python -m name`` finds something to run (a package needs a ``__main__``)."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return False
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:
        return runnable_module(f"{name}.__main__")
    if spec.origin and spec.origin.endswith(".py") and REPO in Path(spec.origin).resolve().parents:
        return '__name__ == "__main__"' in Path(spec.origin).read_text(encoding="utf-8")
    return True


def defines(module: str, name: str) -> bool:
    """Whether ``module`` (a project module, read, not imported) defines or imports ``name``."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return spec is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            (alias.asname or alias.name.split(".")[0]) == name for alias in node.names
        ):
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == name for target in targets):
                return True
    return False


EDITABLE_INSTALL = re.compile(r"\bpip install\b.*\s-e\s+\.(\s|$)")
PLAIN_INSTALL = re.compile(r"\bpip install\b(?!.*\s-e\s).*\s\.(\s|$)")  # `pip install .`, not editable


def strings_in(node, path: tuple = ()):
    """(path, string) for every string value in loaded YAML."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings_in(value, (*path, i))
    elif isinstance(node, str):
        yield path, node


def setting_variables() -> set[str]:
    """The RAGREEL_* environment variables that ragreel.settings.Settings reads."""
    prefix = Settings.model_config["env_prefix"]
    names = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", [alias] if isinstance(alias, str) else [])
        names.update(choice for choice in choices if isinstance(choice, str))
        if alias is None:
            names.add(f"{prefix}{field_name}".upper())
    return {name for name in names if name.startswith(prefix)}


def unknown_ragreel_variables(text: str) -> set[str]:
    return set(re.findall(r"\bRAGREEL_[A-Z0-9_]+", text)) - setting_variables() - set(COMPOSE_ONLY)


# --- the helpers catch what they should --------------------------------------------------------------


def test_helpers_catch_wrong_names():
    assert missing_repo_paths("bash deployments/deploy.sh") == []
    assert missing_repo_paths("bash deployments/deploy-all.sh && python -m flows.ingest data/kb") == [
        "deployments/deploy-all.sh"
    ]
    assert repo_paths("urlopen('http://prefect:4200/api/health') -w /wheels $${RAGREEL_HOME}/kb") == []
    assert python_modules("python -m ragreel.api --host 0.0.0.0 && python3 -m flows.ingest") == [
        "ragreel.api",
        "flows.ingest",
    ]
    assert runnable_module("ragreel.api") and runnable_module("flows.ingest")
    assert not runnable_module("ragreel.no_such_module")
    assert not runnable_module("ragreel")  # a package with no __main__
    assert not runnable_module("ragreel.settings")  # a module with no main guard
    assert python_imports("python -c 'import sys; from ragreel.settings import get_settings, Settings'") == [
        ("ragreel.settings", "get_settings"),
        ("ragreel.settings", "Settings"),
        ("sys", None),
    ]
    assert defines("ragreel.settings", "get_settings") and not defines("ragreel.settings", "get_setting")
    assert unknown_ragreel_variables("RAGREEL_HOME RAGREEL_OPENAI_API_KEY RAGREEL_DATABASE_URL") == set()
    assert unknown_ragreel_variables("RAGREEL_HOME_DIR: x") == {"RAGREEL_HOME_DIR"}
    assert ignored(".venv/bin/python", ("**/__pycache__", ".venv"))
    assert ignored("flows/__pycache__/demo.pyc", ("**/__pycache__",))
    assert not ignored("flows/demo.py", ("**/__pycache__", ".venv"))
    assert makefile_variable("A ?= -DX=ON \\\n\t-DY=OFF\nB := 1\n", "A").split() == ["-DX=ON", "-DY=OFF"]
    steps = dockerfile_instructions('# c\nARG V="1 2"\nRUN a \\\n  # c\n  b\n')
    assert steps == [("ARG", 'V="1 2"'), ("RUN", "a    b")]
    assert dockerfile_arg(steps, "V") == "1 2" and dockerfile_arg(steps, "W") is None
    assert EDITABLE_INSTALL.search("pip install --find-links /wheels -e .")
    assert not EDITABLE_INSTALL.search("pip install --find-links /wheels .")
    assert PLAIN_INSTALL.search("pip install --no-cache-dir .")
    assert not PLAIN_INSTALL.search("pip install --no-deps -e .")
    assert not PLAIN_INSTALL.search(
        "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    )
    assert list(strings_in({"a": [{"b": "x"}, 1]})) == [(("a", 0, "b"), "x")]


# --- Dockerfile --------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_dockerfile_copies_only_files_that_exist_and_reach_the_build():
    copies = [
        dockerfile_words(args) for instruction, args in instructions() if instruction in ("COPY", "ADD")
    ]
    local = [words for words in copies if not any(word.startswith("--from=") for word in words)]
    assert local, "the Dockerfile copies nothing from the repository"
    for words in local:
        sources = [word for word in words if not word.startswith("--")][:-1]
        assert sources, words
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert source == "." or not ignored(source), f"COPY {source}: left out by .dockerignore"


def test_the_project_is_copied_to_app_and_installed_editable():
    steps = instructions()
    assert ("WORKDIR", "/app") in steps
    workdir = steps.index(("WORKDIR", "/app"))
    copies_all = [
        i
        for i, (instruction, args) in enumerate(steps)
        if instruction == "COPY"
        and [w for w in dockerfile_words(args) if not w.startswith("--")]
        in (
            [".", "."],
            [".", "/app"],
            [".", "/app/"],
        )
    ]
    assert copies_all and copies_all[0] > workdir, "the project is not copied to /app"
    runs = [args for instruction, args in steps if instruction == "RUN"]
    assert any(EDITABLE_INSTALL.search(args) for args in runs), "no `pip install -e .`"
    assert not any(PLAIN_INSTALL.search(args) for args in runs), (
        "a non-editable `pip install .`: flows/ and tasks/ must be the files in /app"
    )
    # the last install of the project comes after the whole project is in /app
    last_install = max(i for i, (instruction, args) in enumerate(steps) if EDITABLE_INSTALL.search(args))
    assert last_install > copies_all[0], "the project is installed before it is copied"


def test_llama_cpp_is_built_as_the_makefile_builds_it():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    steps = instructions()
    assert dockerfile_arg(steps, "LLAMA_CMAKE_ARGS") is not None, "no ARG LLAMA_CMAKE_ARGS"
    assert (
        dockerfile_arg(steps, "LLAMA_CMAKE_ARGS").split()
        == makefile_variable(makefile, "LLAMA_CMAKE_ARGS").split()
    )
    assert dockerfile_arg(steps, "LLAMA_VERSION") == makefile_variable(makefile, "LLAMA_VERSION")
    pins = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert f"llama-cpp-python[server]=={makefile_variable(makefile, 'LLAMA_VERSION')}" in pins
    runs = [args for instruction, args in steps if instruction == "RUN"]
    build = [args for args in runs if "llama-cpp-python==${LLAMA_VERSION}" in args]
    assert build and 'CMAKE_ARGS="${LLAMA_CMAKE_ARGS}"' in build[0], "the ARGs are not what the build uses"
    # pip takes the wheel built above only if it looks there
    assert any("--find-links /wheels" in args and EDITABLE_INSTALL.search(args) for args in runs)


def test_torch_comes_from_the_cpu_index_at_pyprojects_pin_before_the_project():
    pins = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    pinned = [re.match(r"torch==([\w.]+)", pin).group(1) for pin in pins if re.match(r"torch\s*==", pin)]
    assert len(pinned) == 1, "pyproject.toml no longer pins torch exactly"
    runs = [args for instruction, args in instructions() if instruction == "RUN"]
    torch = [i for i, args in enumerate(runs) if re.search(r"pip install\b.*\btorch==", args)]
    assert torch, "torch is not installed on its own"
    assert re.search(r"\btorch==([\w.]+)", runs[torch[0]]).group(1) == pinned[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch[0]]
    project = [i for i, args in enumerate(runs) if EDITABLE_INSTALL.search(args)]
    assert project and torch[0] < project[0], "torch must be installed before the project pulls it from PyPI"


def test_the_image_runs_python_of_pyprojects_version_with_the_makefiles_environment():
    steps = instructions()
    requires = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "requires-python"
    ]
    bases = [args.split()[0] for instruction, args in steps if instruction == "FROM"]
    assert bases
    for base in bases:
        version = re.fullmatch(r"python:(\d+\.\d+)[\w.-]*", base)
        assert version, f"{base} is not an official python image"
        assert f"{version.group(1)}.0" in SpecifierSet(requires), f"{base} vs requires-python {requires}"
    env = dockerfile_env(steps)
    exports = makefile_exports((REPO / "Makefile").read_text(encoding="utf-8"))
    assert {"HF_HUB_OFFLINE", "DO_NOT_TRACK"} <= set(exports)
    for name, value in exports.items():
        assert env.get(name) == value, f"the Makefile exports {name}={value}; the image has {env.get(name)}"
    assert unknown_ragreel_variables(" ".join(env)) == set()
    for name, value in env.items():
        if name.startswith("RAGREEL_"):
            assert name not in COMPOSE_ONLY, name
            assert value.startswith("/data/"), f"{name}={value} is not on the /data volume"


def test_dockerfile_commands_name_existing_files_and_modules():
    steps = instructions()
    text = " ".join(
        " ".join(dockerfile_words(args)) if instruction == "CMD" else args
        for instruction, args in steps
        if instruction in ("RUN", "CMD", "ENTRYPOINT")
    )
    assert missing_repo_paths(text) == []
    modules = python_modules(text)
    assert "ragreel.api" in modules
    assert [module for module in modules if not runnable_module(module)] == []


def test_dockerignore_leaves_out_local_state_and_keeps_the_project():
    for path in (
        ".venv/bin/python",
        ".ragreel/kb",
        ".git/HEAD",
        ".env",
        "flows/__pycache__/x.pyc",
        "out/a.mp4",
    ):
        assert ignored(path), f"{path} would be sent to docker build"
    kept = [
        "pyproject.toml",
        "README.md",
        "prefect.yaml",
        "deployments/deploy.sh",
        "deployments/worker.sh",
        "data/kb",
    ]
    kept += ["ragreel/__init__.py", "tasks/__init__.py", "flows/__init__.py"]
    for path in kept:
        assert (REPO / path).exists() and not ignored(path), f"{path} would be left out of the image"
    # everything the compose commands name must be in the image too
    for name, service in built_services().items():
        for path in repo_paths(commands(service)):
            assert not ignored(path), f"{name} runs {path}, which .dockerignore leaves out"


# --- compose.yaml ------------------------------------------------------------------------------------


def test_compose_builds_one_image_from_this_dockerfile():
    built = built_services()
    assert set(built) >= {"prefect", "deploy", "worker", "api"}
    images = set()
    for name, service in built.items():
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (REPO / context).resolve() == REPO, f"{name} builds from {context}"
        assert (REPO / context / dockerfile).is_file(), f"{name}: no {dockerfile}"
        assert service.get("image"), f"{name} builds an image with no name: each service would build its own"
        images.add(service["image"])
    assert len(images) == 1, f"the services build differently named images: {images}"
    for name, service in services().items():
        if name not in built:
            assert service.get("image") and ":" in service["image"], (
                f"{name}: an image with a tag, or a build"
            )
            assert service["image"] not in images, f"{name} would pull the image the others build"


def test_compose_commands_name_existing_files_and_modules():
    names = set()
    for name, service in services().items():
        text = commands(service)
        if name in built_services():
            assert text, f"{name} has no command"
        assert missing_repo_paths(text) == [], f"{name} names files that do not exist"
        for module in python_modules(text):
            assert runnable_module(module), f"{name}: python -m {module} has nothing to run"
            names.add(module)
        for module, imported in python_imports(text):
            assert importlib.util.find_spec(module) is not None, f"{name} imports {module}"
            if imported:
                assert defines(module, imported), f"{name}: {module} has no {imported}"
    assert {"ragreel.api", "flows.ingest"} <= names


def test_the_services_run_the_projects_commands():
    deploy, worker, api = (commands(services()[name]) for name in ("deploy", "worker", "api"))
    assert "bash deployments/deploy.sh" in deploy
    assert "python -m flows.ingest data/kb" in deploy
    assert "bash deployments/worker.sh" in worker
    assert re.search(r"python -m ragreel\.api\b.*--host 0\.0\.0\.0", api)
    assert re.search(r"\bprefect server start\b.*--host 0\.0\.0\.0", commands(services()["prefect"]))
    # deploy.sh makes the pool that worker.sh serves, and prefect.yaml deploys to it
    deploy_sh = (REPO / "deployments" / "deploy.sh").read_text(encoding="utf-8")
    worker_sh = (REPO / "deployments" / "worker.sh").read_text(encoding="utf-8")
    assert "--type process" in deploy_sh and "RAGREEL_WORK_POOL:-ragreel" in deploy_sh
    assert "worker start --pool" in worker_sh and "RAGREEL_WORK_POOL:-ragreel" in worker_sh
    prefect_yaml = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    pools = {deployment["work_pool"]["name"] for deployment in prefect_yaml["deployments"]}
    assert pools == {"ragreel"} == {Settings.model_fields["work_pool"].default}


def test_every_ragreel_service_shares_the_data_volume_and_the_server():
    top_volumes = compose().get("volumes") or {}
    server_port = re.search(r"--port\s+(\d+)", commands(services()["prefect"])).group(1)
    for name, service in built_services().items():
        mounts = service.get("volumes") or []
        named = [m for m in mounts if isinstance(m, str) and m.split(":")[1:2] == ["/data"]]
        assert named, f"{name} does not mount the shared volume at /data"
        assert named[0].split(":")[0] in top_volumes, f"{name}: {named[0]} is not a named volume"
        if name == "prefect":
            continue
        env = environment(service)
        assert env.get("RAGREEL_HOME") == "/data/ragreel", name
        assert env.get("PREFECT_API_URL") == f"http://prefect:{server_port}/api", name
    assert len({m for s in built_services().values() for m in s["volumes"] if m.endswith(":/data")}) == 1


def test_the_worker_links_artifacts_to_the_apis_files():
    api_port = re.search(r"--port\s+(\d+)", commands(services()["api"])).group(1)
    published = [str(p) for p in services()["api"].get("ports", [])]
    assert f"{api_port}:{api_port}" in published
    assert environment(services()["worker"]).get("RAGREEL_PUBLIC_URL") == f"http://localhost:{api_port}/files"
    assert '@app.get("/files/{path:path}"' in (REPO / "ragreel" / "api" / "app.py").read_text(
        encoding="utf-8"
    )


def test_the_api_is_given_its_token_from_the_environment():
    env = environment(services()["api"])
    assert re.fullmatch(r"\$\{RAGREEL_API_TOKEN:\?[^}]+\}", env.get("RAGREEL_API_TOKEN") or ""), (
        "RAGREEL_API_TOKEN must come from the environment, and compose must refuse to start without it"
    )
    assert "RAGREEL_API_TOKEN" in setting_variables()


def test_healthchecks_and_start_order():
    app = (REPO / "ragreel" / "api" / "app.py").read_text(encoding="utf-8")
    assert '@app.get("/healthz")' in app
    assert re.search(r"127\.0\.0\.1:4200/api/health\b", commands(services()["prefect"]))
    assert re.search(r"127\.0\.0\.1:8000/healthz\b", commands(services()["api"]))
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services().items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, rule in depends.items():
            assert target in services(), f"{name} depends on {target}, which is not a service"
            assert rule.get("condition", "service_started") in conditions, (name, target, rule)
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in services()[target], (
                    f"{name} waits for {target} to be healthy: no check"
                )
            if rule.get("condition") == "service_completed_successfully":
                assert services()[target].get("restart") in ("no", None), f"{target} is restarted: never done"
            if "profiles" in services()[target]:
                assert rule.get("required") is False, f"{name} needs {target}, which runs only in a profile"
    order = {name: set(service.get("depends_on") or {}) for name, service in services().items()}
    assert {"prefect"} <= order["deploy"]
    assert {"prefect", "deploy"} <= order["worker"]
    assert {"prefect", "deploy"} <= order["api"]


def test_ragreel_variables_in_compose_are_settings():
    text = COMPOSE.read_text(encoding="utf-8")
    assert unknown_ragreel_variables(text) == set(), "not a ragreel setting (ragreel/settings.py)"
    for name, service in services().items():
        for variable in COMPOSE_ONLY:
            assert variable not in environment(service), (
                f"{name} is given {variable}, which ragreel does not read"
            )
    for variable, target in COMPOSE_ONLY.items():
        uses = [path for path, value in strings_in(compose()) if variable in value]
        assert uses == [("services", "prefect", "environment", target)], f"{variable} is used as {uses}"
    database = environment(services()["prefect"]).get("PREFECT_API_DATABASE_CONNECTION_URL") or ""
    assert re.fullmatch(r"\$\{RAGREEL_DATABASE_URL:-sqlite\+aiosqlite:////data/[^}]+\}", database), database
    postgres = services()["postgres"]
    assert postgres.get("profiles") == ["postgres"] and "healthcheck" in postgres
