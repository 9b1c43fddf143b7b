from geryon.cli import main

main()
