"""Video rendering: a narration WAV and its sentence timeline in, a subtitled MP4 out.

The public entry point is :func:`tasks.render.render_video`; the modules here each do one job:

- :mod:`ragreel.video.fonts` finds the one font that covers Latin and Traditional Chinese;
- :mod:`ragreel.video.layout` sizes, wraps and paginates text (pure, no drawing);
- :mod:`ragreel.video.frames` draws each distinct frame once with Pillow;
- :mod:`ragreel.video.subtitles` writes the ``.srt`` from the same subtitle pages;
- :mod:`ragreel.video.encode` streams the frames through moviepy's ffmpeg writer.

Nothing heavy is imported here: Pillow and moviepy load inside the functions that need them.
"""
