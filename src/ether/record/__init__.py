"""Recording, replay and provenance (an extension package: it builds on the
public API only, docs/design/layers.md).

    Recorder        an instance that writes topics into MCAP files (_recorder.py)
    Writer          the MCAP writer that survives a kill (_writer.py)
    Recording       reading a file or a folder of splits (_reader.py), as
                    `ether.recording.open(path)` gives it
    info, recover, cat_lines, lineage_lines, export_json   `ether bag` (_bag.py)
    play            `ether play` (_player.py)

The format is in _format.py; docs/design/recording.md says why Ether writes
MCAP itself and what each guarantee rests on.
"""
from ._bag import cat_lines as cat_lines
from ._bag import export_json as export_json
from ._bag import format_info as format_info
from ._bag import info as info
from ._bag import lineage_lines as lineage_lines
from ._bag import recover as recover
from ._player import play as play
from ._reader import RecordedMessage as RecordedMessage
from ._reader import Recording as Recording
from ._reader import RecordingFile as RecordingFile
from ._reader import open_recording as open_recording
from ._recorder import Recorder as Recorder
from ._writer import RecordingError as RecordingError
from ._writer import Writer as Writer

__all__ = ["Recorder", "Recording", "RecordedMessage", "RecordingFile", "RecordingError",
           "Writer", "open_recording", "info", "format_info", "recover", "cat_lines",
           "lineage_lines", "export_json", "play"]
