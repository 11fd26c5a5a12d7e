"""`python -m ether._runtime SESSION:NAME`: an instance in a fresh interpreter
(ETHER_START_METHOD=forkserver or spawn; see _launch.py). Its LaunchSpec comes
as MessagePack on stdin; the argument only names it in process listings."""
from ._child import main

main()
