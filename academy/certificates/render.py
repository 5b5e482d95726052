"""Certificates people look at: a self-contained HTML page, and a PDF and PNG of the same.

Both are drawn from a ``CertificateView`` of the signed credential, so they never show
anything the signature does not cover. The HTML is rendered by Jinja2 with autoescaping on
(names are data, not markup); the PDF and PNG by matplotlib with its bundled DejaVu fonts,
which works on any machine the course installs on and never parses names as math text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from academy.certificates.credential import SELF_ASSESSED_NOTE, CertificateView, ModuleLine

__all__ = ["HtmlCertificate", "LevelColour", "PrintedCertificate"]


@dataclass(frozen=True)
class LevelColour:
    main: str
    dark: str
    light: str

    @classmethod
    def of(cls, level: str) -> LevelColour:
        return _COLOURS.get(level, _COLOURS["default"])


_COLOURS = {
    "bronze": LevelColour("#b87333", "#7a4a1e", "#f0c79c"),
    "silver": LevelColour("#8e9aa6", "#59636d", "#eef2f5"),
    "gold": LevelColour("#c9a227", "#8a6d0b", "#fff1b8"),
    "default": LevelColour("#3d6b9e", "#23425f", "#c9def2"),
}


class HtmlCertificate:
    """The shareable page; it embeds the signed token and says how to verify it.

    ``f0 verify`` checks a page by drawing it again from its credential with the template
    that made it (``academy.certificates.page``), named by the page's
    ``<meta name="generator" content="framework0-academy certificate page N">``. So when the
    template changes, bump ``PAGE_VERSION`` (and the number in the template's meta tag) and
    keep the previous template as ``certificate-vN.html.j2``: pages already handed out then
    still verify.
    """

    PAGE_VERSION = 1
    _env = jinja2.Environment(
        loader=jinja2.PackageLoader("academy.certificates", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    @classmethod
    def template_name(cls, version: int) -> str | None:
        """The template of page version ``version``; None when this version has none."""
        name = "certificate.html.j2" if version == cls.PAGE_VERSION else None
        if version < cls.PAGE_VERSION:
            name = f"certificate-v{version}.html.j2"
        if name is None or name not in cls._env.list_templates():
            return None
        return name

    def render(
        self, view: CertificateView, token: str, token_file: str, version: int | None = None
    ) -> str:
        name = self.template_name(self.PAGE_VERSION if version is None else version)
        if name is None:
            raise ValueError(f"no template for certificate page version {version}")
        template = self._env.get_template(name)
        return template.render(
            view=view,
            colour=LevelColour.of(view.level),
            token=token,
            token_file=token_file,
            self_note=SELF_ASSESSED_NOTE,
        )


class PrintedCertificate:
    """A landscape A4 certificate as PDF (to print) and PNG (to post)."""

    WIDTH, HEIGHT = 11.69, 8.27  # inches

    def write(self, view: CertificateView, pdf: Path, png: Path, dpi: int = 110) -> None:
        figure = self.draw(view)
        figure.savefig(pdf, format="pdf", metadata={"Title": self._title(view)})
        figure.savefig(png, format="png", dpi=dpi)

    def _title(self, view: CertificateView) -> str:
        return f"{view.course}: {view.achievement}, {view.learner}"

    def draw(self, view: CertificateView):  # -> matplotlib.figure.Figure
        from matplotlib.figure import Figure
        from matplotlib.patches import Ellipse, Rectangle

        colour = LevelColour.of(view.level)
        fig = Figure(figsize=(self.WIDTH, self.HEIGHT), facecolor="#fffdf8")
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")
        ax.add_patch(Rectangle((0.02, 0.03), 0.96, 0.94, fill=False, lw=9, edgecolor=colour.main))
        ax.add_patch(Rectangle((0.04, 0.06), 0.92, 0.88, fill=False, lw=1.2, edgecolor=colour.dark))

        def text(x: float, y: float, value: str, **style) -> None:
            ax.text(
                x, y, value, ha=style.pop("ha", "center"), va="center", parse_math=False, **style
            )

        if view.self_assessed:
            text(
                0.5,
                0.5,
                "SELF-ASSESSED",
                fontsize=96,
                color="#b3261e",
                alpha=0.08,
                rotation=24,
                weight="bold",
            )
            text(
                0.5,
                0.905,
                "SELF-ASSESSED: not issued by the course",
                fontsize=12,
                color="#b3261e",
                weight="bold",
            )
        text(0.5, 0.86, view.course.upper(), fontsize=14, color=colour.dark, weight="bold")
        text(0.5, 0.785, "Certificate of Achievement", fontsize=34, family="serif")
        text(0.5, 0.715, "This certifies that", fontsize=13, style="italic", color="#556")
        name_size = 30 if len(view.learner) <= 30 else max(14, 30 * 30 / len(view.learner))
        text(0.5, 0.65, view.learner, fontsize=name_size, family="serif")
        ax.plot([0.25, 0.75], [0.612, 0.612], color=colour.main, lw=1)
        text(0.5, 0.57, "has reached the level", fontsize=13, style="italic", color="#556")
        text(0.5, 0.515, view.achievement, fontsize=22, family="serif", color=colour.dark)
        radius = 0.06
        ax.add_patch(
            Ellipse(
                (0.86, 0.76), 2 * radius * self.HEIGHT / self.WIDTH, 2 * radius, color=colour.main
            )
        )
        text(0.86, 0.76, view.level.upper(), fontsize=13, color="white", weight="bold")

        y = 0.44
        text(0.22, y, "MODULE", fontsize=9, ha="left", color="#778", weight="bold")
        text(0.78, y, "SCORE  (PASS MARK)", fontsize=9, ha="right", color="#778", weight="bold")
        lines = view.modules[:8]
        if len(view.modules) > 8:
            more = len(view.modules) - 7
            lines = (*lines[:7], ModuleLine(f"and {more} more modules (see the HTML)", "", "", ""))
        step = min(0.036, 0.25 / max(len(lines), 1))
        size = 11 if len(lines) <= 5 else 9.5
        for line in lines:
            y -= step
            text(0.22, y, line.name, fontsize=size, ha="left")
            text(
                0.78,
                y,
                f"{line.score} / {line.points}  ({line.pass_mark})" if line.points else "",
                fontsize=size,
                ha="right",
                color="#334",
            )
            ax.plot([0.22, 0.78], [y - step / 2, y - step / 2], color="#e3e0d8", lw=0.8)
        text(0.10, 0.16, "Issued " + view.issued.strftime("%d %B %Y"), fontsize=11, ha="left")
        text(0.90, 0.16, "Issuer: " + view.issuer, fontsize=11, ha="right")
        text(
            0.5,
            0.11,
            "Verify the signed credential (.jwt) with `f0 verify`; it names the signing key "
            f"{view.issuer_id[:32]}…",
            fontsize=8.5,
            color="#667",
        )
        text(0.5, 0.085, view.credential_id, fontsize=8, color="#889")
        return fig
