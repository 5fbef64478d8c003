"""The preview window of `cartoonize webcam`, through SDL (pygame-ce).

Why pygame-ce: it is SDL 2, the layer games and emulators use on Linux (X11 and Wayland), macOS
and Windows, in one self-contained wheel per platform (no system GUI toolkit to install), actively
maintained, and it runs under Xvfb, so the window itself is tested headless. OpenCV's highgui was
the other candidate: it drags in a GUI build of OpenCV (the headless wheels have no highgui, and
the GUI wheels conflict with them), its Qt/GTK backend differs by platform, and it cannot draw
text with a real font. The window shows frames and reads keys; nothing else of pygame is used.

Keys: q or Esc quits, space toggles original/cartoon, s saves a snapshot, f toggles the overlay;
closing the window quits.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np

from cartoonize.errors import CartoonizeError

MIN_WINDOW_SIDE = 640  # small inference sizes (--max-side 160) are shown enlarged by a whole factor

KEY_ACTIONS = {"q": "quit", "escape": "quit", "space": "toggle", "s": "snapshot", "f": "overlay"}


@contextlib.contextmanager
def _sdl_probing_quiet() -> Iterator[None]:
    """SDL writes what its video drivers' probing found straight to file descriptor 2 (without a
    Wayland session: "error: XDG_RUNTIME_DIR is invalid or not set in the environment."), a stray
    line before ours; what matters comes back as the pygame.error, so fd 2 goes to /dev/null here."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class PreviewWindow:
    def __init__(self, title: str) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError:
            raise CartoonizeError(
                "the preview window needs pygame-ce (`pip install 'cartoonize[webcam]'`); "
                "or use --no-preview, or --serve PORT to watch in a browser"
            ) from None
        self._pg = pygame
        problem = None
        try:
            with _sdl_probing_quiet():
                pygame.display.init()
                pygame.font.init()
        except pygame.error as exc:
            problem = str(exc)
        else:
            driver = pygame.display.get_driver()
            # with no screen SDL falls back to an invisible window: refuse it unless asked for by name
            if driver in ("offscreen", "dummy") and os.environ.get("SDL_VIDEODRIVER") != driver:
                pygame.display.quit()
                problem = (
                    self._x11()
                    if os.environ.get("DISPLAY")
                    else ("no display: DISPLAY and WAYLAND_DISPLAY are not set")
                )
        if problem:
            raise CartoonizeError(
                f"cannot open a preview window ({problem}); use --no-preview, or --serve PORT to watch in a browser"
            )
        pygame.display.set_caption(title)
        self._font = pygame.font.Font(None, 22)
        self._screen = None
        self._size: tuple[int, int] | None = None

    def _x11(self) -> str | None:
        """With DISPLAY set, SDL's X11 driver asked for by name, after SDL fell back to its
        invisible driver: that says why X11 failed (a display that is not there, no permission),
        and is a second try where the first failed for no lasting reason (once in CI, under Xvfb
        on a loaded machine; not pinned down). None once the window can open."""
        pygame = self._pg
        os.environ["SDL_VIDEODRIVER"] = "x11"
        try:
            with _sdl_probing_quiet():
                pygame.display.init()
                pygame.font.init()
        except pygame.error as exc:
            return f"the X display {os.environ['DISPLAY']} cannot be opened: {exc}"
        finally:
            del os.environ["SDL_VIDEODRIVER"]
        return None

    def show(self, rgb: np.ndarray, overlay: list[str] | None = None) -> None:
        pg = self._pg
        h, w = rgb.shape[:2]
        scale = max(1, MIN_WINDOW_SIDE // max(w, h))
        size = (w * scale, h * scale)
        if size != self._size:
            try:
                self._screen = pg.display.set_mode(size)
            except pg.error as exc:
                raise CartoonizeError(f"cannot open a preview window ({exc}); use --no-preview") from None
            self._size = size
        assert self._screen is not None
        image = pg.image.frombuffer(np.ascontiguousarray(rgb).tobytes(), (w, h), "RGB")
        if scale != 1:
            image = pg.transform.scale(image, size)
        self._screen.blit(image, (0, 0))
        if overlay:
            self._draw_overlay(overlay)
        pg.display.flip()

    def _draw_overlay(self, lines: list[str]) -> None:
        pg = self._pg
        rendered = [self._font.render(line, True, (255, 255, 255)) for line in lines]
        width = max(r.get_width() for r in rendered) + 12
        height = sum(r.get_height() for r in rendered) + 8
        box = pg.Surface((width, height), pg.SRCALPHA)
        box.fill((0, 0, 0, 160))
        y = 4
        for r in rendered:
            box.blit(r, (6, y))
            y += r.get_height()
        assert self._screen is not None
        self._screen.blit(box, (8, 8))

    def actions(self) -> list[str]:
        """What the user asked for since the last call: quit, toggle, snapshot, overlay."""
        pg = self._pg
        found = []
        for event in pg.event.get():
            if event.type == pg.QUIT or event.type == pg.WINDOWCLOSE:
                found.append("quit")
            elif event.type == pg.KEYDOWN:
                action = KEY_ACTIONS.get(pg.key.name(event.key))
                if action:
                    found.append(action)
        return found

    def close(self) -> None:
        self._pg.display.quit()
