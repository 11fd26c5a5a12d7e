"""Recording, replay and provenance (an extension package: it builds on the
public API only, docs/design/layers.md).

    Recorder        an instance that writes topics into MCAP files (_recorder.py)
    Writer          the MCAP writer that survives a kill (_writer.py)
    Recording       reading a file or a folder of splits (_reader.py), as
                    `ether.recording.open(path)` gives it
    recover, info   what `ether bag` does (_bag.py); play (_player.py)

The format is in _format.py; docs/design/recording.md says why Ether writes
MCAP itself and what each guarantee rests on.
"""
from ._reader import RecordedMessage as RecordedMessage
from ._reader import Recording as Recording
from ._reader import RecordingFile as RecordingFile
from ._reader import open_recording as open_recording
from ._recorder import Recorder as Recorder
from ._writer import RecordingError as RecordingError
from ._writer import Writer as Writer

__all__ = ["Recorder", "Recording", "RecordedMessage", "RecordingFile", "RecordingError",
           "Writer", "open_recording"]
