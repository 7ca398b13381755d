"""Markdown of the generated pages: one page per loss family, the loss index, the core API.

Everything per loss comes from :data:`lossfns.registry.LOSSES` at build time: the list of
losses and families, hyperparameters and defaults, the checks (what values are accepted),
the adapter names, the docstring (title, formula, remarks, example, references). A loss
added to the registry appears on its family's page with no change here. What the registry
cannot know is data in :mod:`catalogue` (peers, "when to use", linked references, the
one-line formulas of the index) and ``notes/<family>.md`` (how a family is computed), all
optional.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import lossfns
from lossfns import registry

import catalogue
import figures
import text

NOTES = Path(__file__).resolve().parent / "notes"
_SECTION = re.compile(r"^(Args|Arguments|Returns|Raises|References|Reference|Example|Examples|Note|Notes):\s*$")


def family_slug(family: str) -> str:
    return family.replace("_", "-")


def family_title(family: str) -> str:
    return catalogue.FAMILIES.get(family, (family.replace("_", " ").capitalize() + " losses", ""))[0]


def families() -> list[str]:
    """Families in registry order."""
    seen = []
    for spec in registry.LOSSES:
        if spec.family not in seen:
            seen.append(spec.family)
    return seen


def known_losses() -> set[str]:
    return {spec.name for spec in registry.LOSSES}


def docstring_sections(function) -> tuple[str, dict[str, str]]:
    """``(description, {section: body})`` of a Google-style docstring."""
    doc = inspect.cleandoc(function.__doc__ or "")
    description, sections, current = [], {}, None
    for line in doc.splitlines():
        match = _SECTION.match(line)
        if match:
            current = match.group(1)
            sections[current] = []
        elif current is None:
            description.append(line)
        else:
            sections[current].append(line)
    return "\n".join(description).strip(), {k: inspect.cleandoc("\n".join(v)) for k, v in sections.items()}


def _check_range(hyperparameter) -> str:
    """What a hyperparameter accepts, as its domain describes it (lossfns.domains)."""
    described = hyperparameter.domain.describe().replace(">=", "≥")
    return described[3:] if described.startswith("in ") else described


def _code(value) -> str:
    return f"`{value!r}`"


def _adapter_names(spec) -> str:
    classes = registry.class_names(spec)
    functions = (spec.name, *spec.aliases)
    keras = ", ".join(f"`{name}`" for name in classes)
    return (
        "| Keras (`lossfns.adapters.keras`) | PyTorch (`lossfns.adapters.torch`) | JAX (`lossfns.adapters.jax`) |\n"
        "| --- | --- | --- |\n"
        f"| {keras} | {keras} | {', '.join(f'`{n}`' for n in functions)} |\n"
    )


def _example(sections: dict[str, str]) -> str:
    body = sections.get("Example") or sections.get("Examples")
    if not body:
        return ""
    return f"**Example** (a doctest, run in CI):\n\n```pycon\n{body}\n```\n"


def _references(spec, sections: dict[str, str]) -> str:
    linked = catalogue.REFERENCES.get(spec.name)
    if linked:
        items = "\n".join(f"* [{citation}]({url})" for citation, url in linked)
        return f"**References:**\n\n{items}\n"
    refs = sections.get("References") or sections.get("Reference")
    return "**References:** " + " ".join(refs.split()) + "\n" if refs else ""


def loss_section(spec) -> str:
    """The section of one loss on its family page."""
    known = known_losses()
    description, sections = docstring_sections(spec.function)
    api_id = f"{spec.function.__module__}.{spec.function.__name__}"
    parts = [f"## `{spec.name}` {{#{spec.name}}}\n"]
    if spec.aliases:
        parts.append("Alias: " + ", ".join(f"`{a}`" for a in spec.aliases) + ".\n")
    parts.append(text.to_markdown(description, known) + "\n")
    when = catalogue.WHEN_TO_USE.get(spec.name)
    if when:
        parts.append(f"**When to use:** {when} See also [choosing a loss][choosing].\n")

    if spec.hyperparameters:
        rows = [f"| `{h.name}` | {'required' if h.default is registry.REQUIRED else _code(h.default)} "
                f"| {_check_range(h)} |" for h in spec.hyperparameters]
        parts.append("| hyperparameter | default | accepts |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n")
    else:
        parts.append("No hyperparameters.\n")
    options = ", ".join(f"`{name}={default!r}`" for name, default in spec.options.items())
    parts.append(f"Options and defaults: {options}, and the per-call `mask` "
                 "(see [inputs][inputs]).\n")
    extras = []
    if getattr(spec, "logits_only", False):
        extras.append("takes logits only (`from_logits` defaults to `True`)")
    if getattr(spec, "target_kind", "labels") != "labels":
        extras.append(f"its first argument holds {spec.target_kind.replace('_', ' ')}, not labels")
    if not getattr(spec, "additive", True):
        extras.append("not additive: no `all_reduce` / `process_group` / `axis_name`")
    if extras:
        parts.append("This loss " + "; ".join(extras) + ".\n")
    parts.append(_adapter_names(spec))

    peers = catalogue.PEERS.get(spec.name)
    if peers:
        parts.append("**Other implementations:**\n\n" + "\n".join(f"* {item}" for item in peers) + "\n")
    parts.append(f"![{spec.name}: loss and derivative against p](../figures/{spec.name}.png)\n\n"
                 f"*{figures.caption(spec)}*\n")
    parts.append(_example(sections))
    parts.append(_references(spec, sections))
    source = spec.function.__module__.replace(".", "/") + ".py"
    parts.append(f"API and source code: [`lossfns.{spec.name}`][{api_id}] (defined in `{source}`).\n")
    return "\n".join(part for part in parts if part)


def family_page(family: str) -> str:
    title, intro = catalogue.FAMILIES.get(family, (family_title(family), ""))
    specs = [spec for spec in registry.LOSSES if spec.family == family]
    header = f"# {title} {{#losses-{family_slug(family)}}}\n\n"
    if intro:
        header += text.spec_links(intro, known_losses()) + "\n\n"
    header += "On this page: " + ", ".join(f"[`{s.name}`](#{s.name})" for s in specs) + ".\n\n"
    notes = NOTES / f"{family}.md"
    if notes.exists():
        header += notes.read_text().rstrip("\n") + "\n\n"
    return header + "\n".join(loss_section(spec) for spec in specs)


def index_page() -> str:
    rows = []
    for spec in registry.LOSSES:
        hyper = ", ".join(f"`{h.name}` (required)" if h.default is registry.REQUIRED else f"`{h.name}={h.default!r}`"
                          for h in spec.hyperparameters) or "—"
        page = f"{family_slug(spec.family)}.md#{spec.name}"
        names = ", ".join(f"`{n}`" for n in registry.class_names(spec))
        value = catalogue.FORMULAS.get(spec.name, "see its section")
        rows.append(f"| [`{spec.name}`]({page}) | {family_title(spec.family)} | {hyper} | {value} | {names} |")
    aliases = "; ".join(f"`{a}` = `{spec.name}`" for spec in registry.LOSSES for a in spec.aliases)
    return (
        "# Losses {#losses}\n\n"
        "Every loss of the registry (`lossfns.registry.LOSSES`), generated when the site is "
        "built. Each has a core function (`lossfns.<name>`), a Keras class and a PyTorch module "
        "(the class names), and a JAX function of the same name. Each page section shows the "
        "formula, the hyperparameters with their defaults and accepted values, the equivalent "
        "calls in other libraries, a figure of the loss and its derivative, when to use it and "
        "its references; [choosing a loss][choosing] compares them by task.\n\n"
        "In the values below, `TP`, `FP`, `FN`, `TN` are the soft [confusion terms][confusion-terms] "
        "of one class and `p` the predicted probability. Distribution terms are averaged over "
        "the elements of a sample with the mask as weights. With probabilities, `p` is clipped "
        "to `[1e-7, 1 − 1e-7]` inside logs and focal factors only; with logits every log comes "
        "from a log-softmax / log-sigmoid and nothing is clipped."
        + (f" Aliases: {aliases}." if aliases else "") + "\n\n"
        "| loss | family | hyperparameters (defaults) | value | Keras / PyTorch class |\n"
        "| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
        "!!! warning \"γ means opposite things in the two focal Tversky losses\"\n"
        "    `focal_tversky_loss` (tensorflow-mri, Abraham & Khan) computes `(1 − TI)^γ`; the "
        "Unified Focal functions (`symmetric_/asymmetric_focal_tversky_loss`, "
        "`*_unified_focal_loss`) compute `(1 − mTI)^(1−γ)`. Both default to γ = 0.75, which is a "
        "mild exponent in one and a strong one in the other. Also: in `focal_tversky_loss` α "
        "weighs false positives; in the Unified Focal family δ weighs false negatives "
        "(`mTI = (TP+ε)/(TP + δ·FN + (1−δ)·FP + ε)`).\n"
    )


def _public_by_module() -> dict[str, list[str]]:
    """Public core names (``lossfns.__all__``) grouped by defining module, aliases left out."""
    grouped: dict[str, list[str]] = {}
    for name in lossfns.__all__:
        value = getattr(lossfns, name)
        if getattr(value, "__name__", name) != name:
            continue  # an alias such as dice_loss: documented with its target
        grouped.setdefault(value.__module__, []).append(name)
    return grouped


def core_api_page() -> str:
    aliases = {spec.name: spec.aliases for spec in registry.LOSSES if spec.aliases}
    alias_text = "; ".join(f"`{a}` is `{name}`" for name, names in aliases.items() for a in names)
    parts = [
        "# Core API {#api-core}\n",
        "The framework-free functions of `lossfns`, grouped by module (every name is also "
        "importable from `lossfns` itself). Arrays may come from NumPy, PyTorch, JAX, "
        "TensorFlow or any array-API library; the result is of the same library and device. "
        f"Aliases: {alias_text}.\n" if alias_text else "",
    ]
    for module, names in _public_by_module().items():
        members = "\n".join(f"        - {name}" for name in names)
        parts.append(f"::: {module}\n    options:\n      members:\n{members}\n")
    return "\n".join(parts)
