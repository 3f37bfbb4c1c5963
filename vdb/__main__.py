from vdb.cli.main import main

main()
