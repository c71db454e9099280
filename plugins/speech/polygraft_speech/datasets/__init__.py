"""Speech datasets: ``audio-folder``, ``audio-manifest`` (files) and ``spoken-digits``,
``spoken-digit-strings`` (generated with espeak-ng into the cache).

Example:
    >>> from polygraft_speech.datasets import create_audio_folder, create_spoken_digits
    >>> callable(create_audio_folder) and callable(create_spoken_digits)
    True
"""

from polygraft_speech.datasets.files import create_audio_folder, create_audio_manifest
from polygraft_speech.datasets.source import AudioFileSource, AudioRecord
from polygraft_speech.datasets.spoken import (
    create_spoken_digit_strings,
    create_spoken_digits,
    create_spoken_speakers,
    split_voices,
)

__all__ = ["AudioFileSource", "AudioRecord", "create_audio_folder", "create_audio_manifest",
           "create_spoken_digit_strings", "create_spoken_digits", "create_spoken_speakers", "split_voices"]
