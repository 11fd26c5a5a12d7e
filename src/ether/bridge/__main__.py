"""`python -m ether.bridge SESSION:bridge`: the bridge process (see _bridge.py).
The supervisor starts it with its MemberSpec on stdin; the argument only names
it in process listings."""
from ._bridge import main

main()
