"""Env-file edits: everything but the changed values kept byte for byte, atomic writes, a
byte-identical .bak, and refusals that leave the file as it was."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowswap.errors import WriteError
from shadowswap.settings.envfile import (
    edit_text,
    exclusive,
    parse_values,
    read_env,
    render_diff,
    stamped_backups,
    write_env,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "env.staging"


def changed_lines(old: str, new: str) -> list[tuple[str, str]]:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def test_each_quoting_style_and_prefix_is_kept() -> None:
    old = FIXTURE.read_text()
    new = edit_text(
        old,
        {
            "RETRIEVAL_BACKEND": "chroma",  # export + double quotes + inline comment
            "RETRIEVAL_TARGET_BACKEND": "faiss",  # export + single quotes + inline comment
            "FF_RETRIEVAL_SHADOW_READ": "OFF",  # export, bare
            "CHROMA_PATH": "/srv/chroma db",  # spaces around '=', double quotes
            "RETRIEVAL_SHADOW_TIMEOUT_MS": "900",  # bare + inline comment
        },
    )
    assert changed_lines(old, new) == [
        (
            'export RETRIEVAL_BACKEND="faiss"          # primary (serves reads)\n',
            'export RETRIEVAL_BACKEND="chroma"          # primary (serves reads)\n',
        ),
        (
            "export RETRIEVAL_TARGET_BACKEND='chroma'  # shadow reads + dual writes go here\n",
            "export RETRIEVAL_TARGET_BACKEND='faiss'  # shadow reads + dual writes go here\n",
        ),
        ('CHROMA_PATH = "./chroma_db"\n', 'CHROMA_PATH = "/srv/chroma db"\n'),
        ("export FF_RETRIEVAL_SHADOW_READ=ON\n", "export FF_RETRIEVAL_SHADOW_READ=OFF\n"),
        (
            "RETRIEVAL_SHADOW_TIMEOUT_MS=800   # strict deadline\n",
            "RETRIEVAL_SHADOW_TIMEOUT_MS=900   # strict deadline\n",
        ),
    ]
    values = parse_values(new)
    assert values["CHROMA_PATH"] == "/srv/chroma db"
    assert values["OTHER_SERVICE_TOKEN"] == "abc#def"


def test_blank_lines_comments_and_unparsable_lines_survive() -> None:
    old = "# head\n\n\nA=1\nthis is not an assignment\n\n  # indented comment\nB='x'\n"
    new = edit_text(old, {"B": "y", "A": "2"})
    assert new == "# head\n\n\nA=2\nthis is not an assignment\n\n  # indented comment\nB='y'\n"


def test_crlf_line_endings_are_kept_and_used_for_appends() -> None:
    old = "A=1\r\n# c\r\nexport B=2\r\n"
    new = edit_text(old, {"A": "3", "C": "new"})
    assert new == "A=3\r\n# c\r\nexport B=2\r\nC=new\r\n"


def test_missing_variables_are_appended_in_the_files_style() -> None:
    exported = "export A=1\nexport B=2\nC=3"  # no final newline, mostly `export`
    assert edit_text(exported, {"D": "x y"}) == 'export A=1\nexport B=2\nC=3\nexport D="x y"\n'
    assert edit_text("", {"D": "1"}) == "D=1\n"
    assert edit_text("A=1\n", {"D": ""}) == "A=1\nD=\n"


def test_a_variable_set_twice_is_changed_on_both_lines() -> None:
    new = edit_text("A=ON\n# later override\nA='ON'\n", {"A": "OFF"})
    assert new == "A=OFF\n# later override\nA='OFF'\n"


def test_empty_value_with_inline_comment() -> None:
    new = edit_text("A= # nothing yet\nB=\n", {"A": "ON", "B": "x"})
    assert new == "A= ON # nothing yet\nB=x\n"
    assert parse_values(new) == {"A": "ON", "B": "x"}


def test_a_hash_inside_a_bare_value_is_not_a_comment() -> None:
    new = edit_text("A=abc#def\n", {"A": "x#y"})
    assert new == 'A="x#y"\n'
    assert parse_values(new)["A"] == "x#y"


@given(
    value=st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="$"), max_size=40
    ),
    style=st.sampled_from(["A=old\n", "A='old'\n", 'A="old"\n', "export A = old  # c\n"]),
)
def test_any_value_reads_back_exactly(value: str, style: str) -> None:
    new = edit_text("# top\n" + style + "B=keep\n", {"A": value})
    assert parse_values(new) == {"A": value, "B": "keep"}
    assert new.startswith("# top\n") and new.endswith("B=keep\n")


def test_control_characters_are_refused() -> None:
    with pytest.raises(WriteError, match="control character"):
        edit_text("A=1\n", {"A": "a\nB=2"})


def test_diff_masks_secrets_in_context_lines() -> None:
    old = FIXTURE.read_text()
    new = edit_text(old, {"FF_RETRIEVAL_DUAL_WRITE": "OFF"})
    diff = render_diff(".env.staging", old, new)
    assert "-export FF_RETRIEVAL_DUAL_WRITE='on'" in diff
    assert "+export FF_RETRIEVAL_DUAL_WRITE='OFF'" in diff
    assert "s3cret-pw" not in diff
    assert 'postgresql://retrieval:***@db.staging.internal:5432/outbox"' in diff


# -- writing -----------------------------------------------------------------------------------
def _copy_fixture(tmp_path: Path, mode: int = 0o640) -> Path:
    path = tmp_path / ".env.staging"
    path.write_bytes(FIXTURE.read_bytes())
    path.chmod(mode)
    return path


def test_write_keeps_mode_makes_identical_backup_and_leaves_no_temp(tmp_path: Path) -> None:
    path = _copy_fixture(tmp_path)
    snapshot = read_env(path)
    new = edit_text(snapshot.text, {"FF_RETRIEVAL_DUAL_WRITE": "OFF"})
    backup = write_env(snapshot, new, backup=True, at=1_760_000_000.25)
    assert backup is not None and backup.latest == tmp_path / ".env.staging.bak"
    assert backup.kept == tmp_path / ".env.staging.bak.20251009T085320.250000Z"
    for copy in (backup.latest, backup.kept):
        assert copy.read_bytes() == FIXTURE.read_bytes()
        assert stat.S_IMODE(copy.stat().st_mode) == 0o640
    assert path.read_text() == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".env.staging",
        ".env.staging.bak",
        ".env.staging.bak.20251009T085320.250000Z",
    ]


def test_every_apply_keeps_the_file_it_replaced(tmp_path: Path) -> None:
    """Issue 16: ``.bak`` is the newest pre-apply copy and every earlier one stays on disk,
    even when two applies share a timestamp; an apply that changes nothing replaces none."""
    path = _copy_fixture(tmp_path)
    states = [path.read_bytes()]
    for value in ("OFF", "ON", "OFF"):
        snapshot = read_env(path)
        new = edit_text(snapshot.text, {"FF_RETRIEVAL_DUAL_WRITE": value})
        write_env(snapshot, new, backup=True, at=1_760_000_000.0)  # the same stamp each time
        states.append(path.read_bytes())
    snapshot = read_env(path)
    unchanged = write_env(snapshot, snapshot.text, backup=True, at=1_760_000_001.0)
    assert unchanged is not None and unchanged.kept is None
    bak = tmp_path / ".env.staging.bak"
    assert bak.read_bytes() == states[-2]
    copies = stamped_backups(bak)
    assert [p.name[len(bak.name) :] for p in copies] == [
        ".20251009T085320.000000Z",
        ".20251009T085320.000000Z-1",
        ".20251009T085320.000000Z-2",
    ]
    assert [p.read_bytes() for p in copies] == states[:-1]


def test_a_bak_no_copy_holds_is_kept_before_it_is_replaced(tmp_path: Path) -> None:
    """A ``.bak`` from before timestamped copies existed (or made by hand) is not lost."""
    path = _copy_fixture(tmp_path)
    bak = tmp_path / ".env.staging.bak"
    bak.write_text("HAND=made\n")
    snapshot = read_env(path)
    write_env(snapshot, edit_text(snapshot.text, {"METRIC_ENV": "prod"}), backup=True)
    assert bak.read_bytes() == FIXTURE.read_bytes()
    assert sorted(p.read_bytes() for p in stamped_backups(bak)) == sorted(
        [b"HAND=made\n", FIXTURE.read_bytes()]
    )


def test_a_symlink_at_the_bak_path_is_replaced_not_written_through(tmp_path: Path) -> None:
    path = _copy_fixture(tmp_path)
    precious = tmp_path / "precious.txt"
    precious.write_text("not yours\n")
    bak = tmp_path / ".env.staging.bak"
    bak.symlink_to(precious)
    snapshot = read_env(path)
    write_env(snapshot, edit_text(snapshot.text, {"METRIC_ENV": "prod"}), backup=True)
    assert precious.read_text() == "not yours\n"
    assert not bak.is_symlink() and bak.read_bytes() == FIXTURE.read_bytes()


def test_a_read_only_file_or_directory_is_refused_by_its_bits(tmp_path: Path) -> None:
    """Root may write anything; a file or directory without any w bit is refused anyway."""
    path = _copy_fixture(tmp_path, mode=0o444)
    snapshot = read_env(path)
    with pytest.raises(WriteError, match=r"\(mode 0444\)"):
        write_env(snapshot, "A=1\n", backup=True)
    assert path.read_bytes() == FIXTURE.read_bytes()
    path.chmod(0o644)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(WriteError, match=r"its directory is .*\(mode 0555\)"):
            write_env(read_env(path), "A=1\n", backup=True)
    finally:
        tmp_path.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env.staging"]


def test_the_edit_lock_does_not_block_the_writes_it_covers(tmp_path: Path) -> None:
    """`exclusive` locks the file, `write_env` and the state files lock directories: one
    holder never waits for itself, even with the state directory next to the env file."""
    path = _copy_fixture(tmp_path)
    with exclusive(path):
        snapshot = read_env(path)
        write_env(snapshot, edit_text(snapshot.text, {"METRIC_ENV": "prod"}), backup=True)
    assert parse_values(path.read_text())["METRIC_ENV"] == "prod"
    with exclusive(tmp_path / "missing.env"):  # nothing to lock: reading it will say so
        pass
