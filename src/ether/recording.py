"""Reading what a recorder wrote: ``ether.recording.open(path)`` gives a
`Recording` of one MCAP file or a folder of them (see ether.record)."""
from .record._reader import RecordedMessage as RecordedMessage
from .record._reader import Recording as Recording
from .record._reader import open_recording as open

__all__ = ["open", "Recording", "RecordedMessage"]
