# The web app from the VPC Lattice launch post, which ran it on an EC2 instance: it answers
# "Hello from the instance". The only change from the post is that the address and port can be
# chosen (HOST, PORT; the post's 0.0.0.0:8080 by default), so run.sh can start it on a free port.
import os

from flask import Flask

app = Flask(__name__)

@app.route('/')
def index():
  return 'Hello from the instance'

@app.route('/<path>')
def somePath(path):
  return 'Hello from the instance at path "{}"'.format(path)

app.run(host=os.environ.get('HOST', '0.0.0.0'), port=int(os.environ.get('PORT', '8080')))
