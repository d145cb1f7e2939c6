from refledger.cli import main

main()
